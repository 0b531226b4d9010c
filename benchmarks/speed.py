"""Speed and memory of the SynCamMaster transformer and of the default ``syncammaster generate``.

Run from the repository root:

    python benchmarks/speed.py [--quick] [--device cpu|cuda] [--threads N] [--tables N ...] [--markdown FILE]

The transformer is built in the size of the small model shipped with the package
(``src/syncammaster/assets/default_model/transformer/config.json``) with random weights; every forward runs under
``torch.no_grad`` (fp32 on CPU, bf16 on CUDA, as ``generate`` does), and every time is the median of several repeats
after warm-up runs. Inputs have the shape of the default generate: 5 latent frames (17 video frames) of 16x16
latents (128x128 pixels), 64 text tokens, one prompt. The header names the machine, its CPU count, the torch thread
count and the load average, since timings on a shared machine depend on them. ``--threads N`` sets torch's CPU
threads: where another job busies the same cores, fewer threads than cores give far steadier timings (threads of
one parallel region wait on each other, and a descheduled one stalls them all). ``--quick`` runs small sweeps and 2
denoising steps: a smoke test of about a minute.

Tables:

1. Views: one forward for V = 1, 2, 4, 8 views at fixed tokens per view. "ms/view" is ms/forward divided by V and
   "vs V=1" its ratio to the single-view cost: only the multi-view attention sees a sequence that grows with V
   (V*H*W tokens per frame), so the ratio stays close to 1 while that attention is small next to the rest.
   "peak MiB" is what one forward adds on top of the model and its inputs, measured in a fresh process per row
   after a one-token warm-up forward (CPU: growth of the resident-set high-water mark VmHWM, reset through
   /proc/self/clear_refs just before the forward, with freed heap pages handed back to the OS first so that reused
   memory counts; CUDA: torch.cuda.max_memory_allocated).
2. Tokens: V = 4 with growing latent size; "ms/1k tokens" rises with the share of the attention, the only part
   whose cost per token grows with the sequence.
3. Reference: the same weights and inputs through ``tests/reference_syncammaster.py`` (the released block math
   written out plainly: explicit softmax attention, RoPE as float64 complex rotations), timed side by side with
   the model in one run; "speedup" is reference time over model time, "max rel err" the largest output difference
   over the largest output magnitude.
4. Generate: the shipped pipeline with the generate defaults (4 views, 17 frames, 128x128, 50 steps, CFG 5) split
   into text encoding, denoising (one transformer forward of 2 x 4 videos per step, conditional and unconditional
   batched) and VAE decoding; "other" is the rest of the call (input checks, cameras, noise, schedule).
5. Throughput: FLOPs of one forward of table 1's configurations (matmuls, convolutions and attention, as counted
   by ``torch.utils.flop_counter``) over its median time, against the machine's fp32 (or bf16) matmul peak
   measured on square products; "MVS FLOPs" is the share of the multi-view synchronization modules.
6. VAE batch: the shipped VAE encoding and decoding videos of the generate size in batches of 1, 2 and 4;
   time per video and its speedup over batches of one, and the largest difference of the batched latents and
   frames from one-at-a-time ones. torch gives a 3-D convolution to oneDNN only for a batch of two or more (or a
   large input): a batch of one small video runs the generic ``aten::slow_conv3d_forward`` kernel. This is why
   caching encodes several videos at once and the pipeline decodes all views in one call.
7. Training step: one flow-matching step (loss, backward, AdamW) of the shipped size in the batches of the small
   configs (``configs/small/``): stage "base" trains a plain Wan transformer on 8 single-view clips, stage "sync"
   only the MVS parameters on 2 groups of 4 views, with random latents. Eager against ``torch.compile`` (the
   configs' ``compile`` switch), side by side: "speedup" is the ratio of the medians, "compile s" the first
   compiled step's time less a steady one (smaller when torch's on-disk kernel cache already holds the kernels).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from syncammaster import CameraRig, SynCamMasterPipeline, SynCamMasterTransformer3DModel
from syncammaster.app import default_model_dir

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
MIB = 1024**2

# The defaults of `syncammaster generate` (src/syncammaster/cli/generate.py).
GENERATE_VIEWS = 4
GENERATE_FRAMES = 17
GENERATE_SIZE = 128  # pixels, height and width
GENERATE_STEPS = 50
GENERATE_GUIDANCE = 5.0
GENERATE_RIG = "arc"
PROMPT = "a red sphere bounces on a checkered floor"

# Wan's VAE: 4x temporal and 8x spatial compression (the shipped VAE config's scale factors).
LATENT_FRAMES = (GENERATE_FRAMES - 1) // 4 + 1  # 5
LATENT_SIZE = GENERATE_SIZE // 8  # 16

# The reference splits each head's RoPE channels as head_dim // 3 per spatial axis, Wan as 2 * (head_dim // 6).
# They agree for head dims such as 96 or 128 but not for the shipped 64, so the comparison keeps the shipped width
# with 2 heads of 96 instead of 3 of 64 (same FLOPs).
REFERENCE_HEADS = 2

MVS_MODULES = ("mvs_attn", "projector", "cam_encoder")  # the MVS layers that hold matmuls (its LayerNorm has none)


# ---------------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Shape:
    """One transformer input: ``views`` videos of one prompt, each ``frames`` x ``height`` x ``width`` latents."""

    views: int
    frames: int = LATENT_FRAMES
    height: int = LATENT_SIZE
    width: int = LATENT_SIZE

    def tokens_per_view(self, patch_size: tuple[int, int, int]) -> int:
        p_t, p_h, p_w = patch_size
        return (self.frames // p_t) * (self.height // p_h) * (self.width // p_w)

    @property
    def label(self) -> str:
        return f"V={self.views}, {self.frames}x{self.height}x{self.width}"


@dataclass
class Settings:
    device: torch.device
    dtype: torch.dtype
    threads: int
    warmup: int  # untimed runs before each measurement
    repeats: int  # timed runs; the median is reported
    views: list[int]  # table 1
    latent_sizes: list[int]  # table 2, square latents at V = GENERATE_VIEWS
    reference_shapes: list[Shape]  # table 3
    steps: int  # table 4
    vae_batches: list[int]  # table 6
    matmul_size: int  # table 5
    text_tokens: int  # the shipped pipeline's max_sequence_length
    transformer_config: dict[str, Any] = field(repr=False)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(self.transformer_config["patch_size"])


def make_settings(args: argparse.Namespace) -> Settings:
    device = torch.device(args.device)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    model_dir = default_model_dir()
    common = {
        "device": device,
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "text_tokens": json.loads((model_dir / "model_index.json").read_text())["max_sequence_length"],
        "transformer_config": dict(SynCamMasterTransformer3DModel.load_config(model_dir / "transformer")),
    }
    if args.quick:
        return Settings(
            warmup=1,
            repeats=2,
            views=[1, 2],
            latent_sizes=[8, 16],
            reference_shapes=[Shape(views=2, height=8, width=8)],
            steps=2,
            vae_batches=[1, 2],
            matmul_size=1024,
            **common,
        )
    return Settings(
        warmup=2,
        repeats=7,
        views=[1, 2, 4, 8],
        latent_sizes=[8, 16, 24, 32],
        reference_shapes=[Shape(views=2), Shape(views=4)],
        steps=GENERATE_STEPS,
        vae_batches=[1, 2, 4],
        matmul_size=2048,
        **common,
    )


# ---------------------------------------------------------------------------------------------------- tables


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Plain text, first column left-aligned and the others right-aligned."""
        widths = [max(len(row[i]) for row in [self.headers, *self.rows]) for i in range(len(self.headers))]

        def line(cells: list[str]) -> str:
            padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
            return "  ".join(padded)

        rule = "  ".join("-" * w for w in widths)
        body = [self.title, "=" * len(self.title), line(self.headers), rule, *map(line, self.rows)]
        return "\n".join(body + [f"  {note}" for note in self.notes])

    def markdown(self) -> str:
        align = ["---"] + ["---:"] * (len(self.headers) - 1)
        body = [f"### {self.title}", "", *(f"| {' | '.join(r)} |" for r in [self.headers, align, *self.rows])]
        if self.notes:
            body += ["", *self.notes]
        return "\n".join(body)


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def log(message: str) -> None:
    print(f"[speed] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------- helpers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cast_like_from_pretrained(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Casts to ``dtype`` except the modules diffusers keeps in float32 when loading with ``torch_dtype``."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if tensor.is_floating_point() and not keep.intersection(name.split(".")):
            tensor.data = tensor.data.to(dtype)
    return model


def build_transformer(config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    model = SynCamMasterTransformer3DModel.from_config(config).to(device)
    return cast_like_from_pretrained(model, dtype).eval()


def max_relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).abs().max() / expected.float().abs().max()).item()


def make_inputs(
    shape: Shape, config: dict[str, Any], text_tokens: int, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """Keyword arguments of one forward: one prompt seen by ``shape.views`` cameras."""
    generator = torch.Generator().manual_seed(1)
    v = shape.views
    latents = torch.randn(v, config["in_channels"], shape.frames, shape.height, shape.width, generator=generator)
    context = torch.randn(1, text_tokens, config["text_dim"], generator=generator).expand(v, -1, -1)  # (V, L, text)
    camera = torch.randn(v, shape.frames, 12, generator=generator)  # (V, F, 12)
    return {
        "hidden_states": latents.to(device, dtype),  # (V, C, F, H, W)
        "timestep": torch.full((v,), 500.0, device=device),
        "encoder_hidden_states": context.contiguous().to(device, dtype),
        "camera_embedding": camera.to(device, dtype),
        "num_views": v,
        "return_dict": False,
    }


def describe_machine(settings: Settings) -> list[str]:
    if settings.device.type == "cuda":
        processor = torch.cuda.get_device_name(settings.device)
    else:
        processor = platform.processor() or platform.machine()
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.is_file():
            lines = cpuinfo.read_text().splitlines()
            names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
            processor = names[0] if names else processor
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    cfg = settings.transformer_config
    heads, head_dim = cfg["num_attention_heads"], cfg["attention_head_dim"]
    dtype = str(settings.dtype).removeprefix("torch.")
    return [
        f"command: python {' '.join(sys.argv)}",
        f"device: {processor} ({settings.device.type}), {os.cpu_count()} CPUs ({usable} usable), "
        f"torch threads {settings.threads} (interop {torch.get_num_interop_threads()})",
        f"load average (1, 5, 15 min) at start: {load}",
        f"software: python {platform.python_version()}, torch {torch.__version__}, diffusers {diffusers.__version__}",
        f"model: shipped small config (D={heads * head_dim}, {heads} heads x {head_dim}, {cfg['num_layers']} layers, "
        f"FFN {cfg['ffn_dim']}, text dim {cfg['text_dim']}), random weights, {dtype}",
        f"inputs: {LATENT_FRAMES} latent frames of {LATENT_SIZE}x{LATENT_SIZE} latents unless stated, "
        f"{settings.text_tokens} text tokens, 1 prompt; median of {settings.repeats} runs after {settings.warmup} "
        "warm-up",
    ]


# ---------------------------------------------------------------------------------------------------- peak memory


def _status_kib(field_name: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def _release_free_heap() -> None:
    """Returns freed heap pages to the OS (glibc), so that memory the forward reuses shows up in its RSS growth."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the growth may then be understated by memory freed earlier in the process


class _RssSampler:
    """Polls VmRSS in a thread: the fallback where the high-water mark cannot be reset."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak_kib = _status_kib("VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS"))
            time.sleep(self.interval_s)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _status_kib("VmRSS"))


def _forward_peak_in_child(
    config: dict[str, Any], shape: Shape, text_tokens: int, device: torch.device, dtype: torch.dtype, threads: int
) -> tuple[float | None, str]:
    """Runs in a fresh process: (bytes one forward adds on top of model + inputs, how it was measured)."""
    torch.set_num_threads(threads)
    model = build_transformer(config, device, dtype)
    inputs = make_inputs(shape, config, text_tokens, device, dtype)
    with torch.no_grad():
        # A one-token forward first, so that one-off library workspaces are not counted as the forward's memory.
        model(**make_inputs(Shape(views=1, frames=1, height=2, width=2), config, text_tokens, device, dtype))
        gc.collect()
        _release_free_heap()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            model(**inputs)
            torch.cuda.synchronize(device)
            return float(torch.cuda.max_memory_allocated(device) - before), "torch.cuda.max_memory_allocated"
        if not Path("/proc/self/status").is_file():
            return None, "not measured (no /proc/self/status on this system)"
        before_kib = _status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
        except OSError:
            with _RssSampler() as sampler:
                model(**inputs)
            return (sampler.peak_kib - before_kib) * 1024.0, "VmRSS sampled every 1 ms (clear_refs unavailable)"
        model(**inputs)
        return (_status_kib("VmHWM") - before_kib) * 1024.0, "VmHWM reset through /proc/self/clear_refs"


def forward_peak(settings: Settings, shape: Shape) -> tuple[float | None, str]:
    """Peak memory of one forward, measured in a fresh spawned process so earlier runs leave no trace."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        args = (settings.transformer_config, shape, settings.text_tokens, settings.device, settings.dtype)
        return pool.apply(_forward_peak_in_child, (*args, settings.threads))


# ---------------------------------------------------------------------------------------------------- FLOPs


def _sdpa_flops(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Scores (Q K^T) and weighted sum (P V): two batched matmuls of 2 * b * h * s_q * s_k * d each."""
    b, h, s_q, d = query
    s_k = key[-2]
    return 4 * b * h * s_q * s_k * d


def count_forward_flops(model: torch.nn.Module, inputs: dict[str, Any]) -> tuple[int, int]:
    """(FLOPs of one forward, FLOPs of its MVS modules)."""
    # torch's counter knows the CUDA attention kernels but not the CPU flash kernel SDPA uses here.
    custom = {}
    cpu_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_flash is not None:
        custom[cpu_flash] = _sdpa_flops
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
        model(**inputs)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    mvs_names = {f"{root}.{name}" for name, _ in model.named_modules() if name.rsplit(".", 1)[-1] in MVS_MODULES}
    mvs = sum(sum(ops.values()) for name, ops in counts.items() if name in mvs_names)
    return counter.get_total_flops(), mvs


def matmul_peak_gflops(settings: Settings) -> float:
    n = settings.matmul_size
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(settings.device, settings.dtype)
    b = torch.randn(n, n, generator=generator).to(settings.device, settings.dtype)
    seconds = median_seconds(lambda: a @ b, settings.device, settings.warmup + 1, max(settings.repeats, 5))
    return 2 * n**3 / seconds / 1e9


# ---------------------------------------------------------------------------------------------------- benchmarks


def measure_forward(model, shape: Shape, settings: Settings) -> tuple[dict, float, float | None, str]:
    """One configuration: its inputs, the median forward time, and the forward's peak memory (with its method)."""
    inputs = make_inputs(shape, settings.transformer_config, settings.text_tokens, settings.device, settings.dtype)
    forward = functools.partial(model, **inputs)
    with torch.no_grad():
        seconds = median_seconds(forward, settings.device, settings.warmup, settings.repeats)
    peak, memory_method = forward_peak(settings, shape)
    return inputs, seconds, peak, memory_method


def bench_views(settings: Settings, peak_gflops: float) -> tuple[Table, Table]:
    """Tables 1 (time and memory against V) and 5 (achieved FLOP rate of the same forwards)."""
    model = build_transformer(settings.transformer_config, settings.device, settings.dtype)
    rows, flop_rows, memory_method = [], [], ""
    per_view_v1 = None
    for views in settings.views:
        shape = Shape(views=views)
        log(f"views: {shape.label}")
        inputs, seconds, peak, memory_method = measure_forward(model, shape, settings)
        flops, mvs_flops = count_forward_flops(model, inputs)
        per_view = seconds / views
        per_view_v1 = per_view_v1 or per_view
        rows.append(
            [
                str(views),
                f"{views * shape.tokens_per_view(settings.patch_size):,}",
                fmt(seconds * 1e3),
                fmt(per_view * 1e3),
                fmt(per_view / per_view_v1, 2),
                fmt(None if peak is None else peak / MIB),
                fmt(None if peak is None else peak / MIB / views),
            ]
        )
        gflops = flops / seconds / 1e9
        flop_rows.append(
            [
                str(views),
                fmt(flops / 1e9, 2),
                fmt(100 * mvs_flops / flops),
                fmt(gflops),
                fmt(100 * gflops / peak_gflops),
            ]
        )
    tokens = Shape(views=1).tokens_per_view(settings.patch_size)
    views_table = Table(
        f"1. Transformer forward against views ({tokens} tokens per view)",
        ["V", "tokens", "ms/forward", "ms/view", "vs V=1", "peak MiB", "peak MiB/view"],
        rows,
        [f"peak memory: what one forward adds above model + inputs, fresh process per row; {memory_method}"],
    )
    flops_table = Table(
        "5. Achieved FLOP rate of the forwards of table 1",
        ["V", "GFLOP/forward", "MVS FLOPs %", "GFLOP/s", "% of matmul peak"],
        flop_rows,
        [
            f"matmul peak: {settings.matmul_size}x{settings.matmul_size} {str(settings.dtype).removeprefix('torch.')} "
            f"products, median: {peak_gflops:,.1f} GFLOP/s",
            "FLOPs: matmuls, convolutions and attention as counted by torch.utils.flop_counter (2 per multiply-add)",
        ],
    )
    return views_table, flops_table


def bench_tokens(settings: Settings) -> Table:
    """Table 2: time and memory against tokens per view at V = 4."""
    model = build_transformer(settings.transformer_config, settings.device, settings.dtype)
    rows, memory_method = [], ""
    for size in settings.latent_sizes:
        shape = Shape(views=GENERATE_VIEWS, height=size, width=size)
        log(f"tokens: {shape.label}")
        _, seconds, peak, memory_method = measure_forward(model, shape, settings)
        per_view = shape.tokens_per_view(settings.patch_size)
        total = per_view * shape.views
        rows.append(
            [
                f"{size}x{size} ({size * 8}x{size * 8} px)",
                f"{per_view:,}",
                f"{total:,}",
                fmt(seconds * 1e3),
                fmt(seconds * 1e3 / (total / 1000), 2),
                fmt(None if peak is None else peak / MIB),
            ]
        )
    return Table(
        f"2. Transformer forward against tokens per view (V={GENERATE_VIEWS}, {LATENT_FRAMES} latent frames)",
        ["latent HxW", "tokens/view", "tokens", "ms/forward", "ms/1k tokens", "peak MiB"],
        rows,
        [f"peak memory: {memory_method}"],
    )


def bench_reference(settings: Settings) -> Table:
    """Table 3: the model against the plain re-statement of the released math, same weights and inputs."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    from reference_syncammaster import RefConfig, random_official_state_dict, reference_forward

    cfg = settings.transformer_config
    ref_cfg = RefConfig(
        dim=cfg["num_attention_heads"] * cfg["attention_head_dim"],
        num_heads=REFERENCE_HEADS,
        num_layers=cfg["num_layers"],
        ffn_dim=cfg["ffn_dim"],
        in_channels=cfg["in_channels"],
        out_channels=cfg["out_channels"],
        text_dim=cfg["text_dim"],
        freq_dim=cfg["freq_dim"],
        patch=tuple(cfg["patch_size"]),
        eps=cfg["eps"],
    )
    state = random_official_state_dict(ref_cfg, seed=0)
    model = SynCamMasterTransformer3DModel.from_official_checkpoint(state, num_attention_heads=ref_cfg.num_heads)
    model = cast_like_from_pretrained(model.to(settings.device), settings.dtype).eval()
    state = {name: tensor.to(settings.device, settings.dtype) for name, tensor in state.items()}
    model_config = dict(model.config)

    rows = []
    for shape in settings.reference_shapes:
        log(f"reference: {shape.label}")
        inputs = make_inputs(shape, model_config, settings.text_tokens, settings.device, settings.dtype)
        ref_args = (
            inputs["hidden_states"],
            inputs["timestep"],
            inputs["encoder_hidden_states"],
            inputs["camera_embedding"],
            shape.views,
        )
        with torch.no_grad():
            error = max_relative_error(model(**inputs)[0], reference_forward(state, ref_cfg, *ref_args))
            ours = functools.partial(model, **inputs)
            ref = functools.partial(reference_forward, state, ref_cfg, *ref_args)
            ours_s = median_seconds(ours, settings.device, settings.warmup, settings.repeats)
            ref_s = median_seconds(ref, settings.device, settings.warmup, settings.repeats)
        rows.append([shape.label, fmt(ours_s * 1e3), fmt(ref_s * 1e3), f"{ref_s / ours_s:.2f}x", f"{error:.1e}"])
    return Table(
        "3. Model against the reference implementation (same weights and inputs)",
        ["input", "model ms", "reference ms", "speedup", "max rel err"],
        rows,
        [
            f"config: the shipped size with {ref_cfg.num_heads} heads of {ref_cfg.dim // ref_cfg.num_heads} "
            "(the reference's RoPE split needs head_dim // 3 == 2 * (head_dim // 6)), released-format random weights"
        ],
    )


class _DenoiseClock:
    """Start of the first transformer forward and end of the last step of one pipeline call."""

    def __init__(self, device: torch.device):
        self.device = device
        self.first_forward: float | None = None
        self.last_step_end = 0.0

    def before_forward(self, module: torch.nn.Module, args: tuple) -> None:
        if self.first_forward is None:
            synchronize(self.device)
            self.first_forward = time.perf_counter()

    def after_step(self, pipe: SynCamMasterPipeline, step: int, timestep: torch.Tensor, tensors: dict) -> None:
        synchronize(self.device)
        self.last_step_end = time.perf_counter()


def bench_generate(settings: Settings) -> Table:
    """Table 4: the default generate split into its phases."""
    device = settings.device
    pipe = SynCamMasterPipeline.from_pretrained(default_model_dir(), dtype=settings.dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    call = {
        "prompt": PROMPT,
        "rig": CameraRig.load(GENERATE_RIG, num_views=GENERATE_VIEWS),
        "negative_prompt": None,  # the model's default, as the CLI passes it without --negative-prompt
        "height": GENERATE_SIZE,
        "width": GENERATE_SIZE,
        "num_frames": GENERATE_FRAMES,
        "guidance_scale": GENERATE_GUIDANCE,
        "seed": 0,
    }
    log("generate: warm-up")
    warm = pipe(**call, num_inference_steps=1, output_type="latent").videos
    pipe.decode_latents(warm[:1])

    log("generate: text encoding")
    with torch.no_grad():
        text_s = median_seconds(
            lambda: pipe.encode_prompt(
                [PROMPT],
                [pipe.config.negative_prompt],  # what the call uses for negative_prompt=None
                do_classifier_free_guidance=GENERATE_GUIDANCE > 1.0,
                max_sequence_length=pipe.config.max_sequence_length,
                device=device,
            ),
            device,
            settings.warmup,
            settings.repeats,
        )

    log(f"generate: {settings.steps} denoising steps")
    clock = _DenoiseClock(device)
    hook = pipe.transformer.register_forward_pre_hook(clock.before_forward)
    synchronize(device)
    start = time.perf_counter()
    latents = pipe(
        **call, num_inference_steps=settings.steps, output_type="latent", callback_on_step_end=clock.after_step
    ).videos  # (V, C, F, h, w)
    synchronize(device)
    end = time.perf_counter()
    hook.remove()
    denoise_s = clock.last_step_end - clock.first_forward
    other_s = max(0.0, (clock.first_forward - start) - text_s) + (end - clock.last_step_end)

    log("generate: decoding")
    with torch.no_grad():
        synchronize(device)
        decode_start = time.perf_counter()
        decoded = pipe.decode_latents(latents)  # (V, 3, T, H, W)
        pipe.video_processor.postprocess_video(decoded, output_type="np")
        synchronize(device)
        decode_s = time.perf_counter() - decode_start

    total = text_s + denoise_s + decode_s + other_s
    batch = 2 * GENERATE_VIEWS if GENERATE_GUIDANCE > 1.0 else GENERATE_VIEWS
    phases = [
        ("text encoding (prompt + negative)", text_s),
        (f"denoising ({settings.steps} steps, {batch} videos per forward)", denoise_s),
        (f"VAE decoding ({GENERATE_VIEWS} videos)", decode_s),
        ("other (checks, cameras, noise, schedule)", other_s),
    ]
    rows = [[name, fmt(s, 3), fmt(100 * s / total)] for name, s in phases]
    rows.append(["total", fmt(total, 3), "100.0"])
    return Table(
        f"4. Default generate ({GENERATE_VIEWS} views, {GENERATE_FRAMES} frames, {GENERATE_SIZE}x{GENERATE_SIZE}, "
        f"{settings.steps} steps, CFG {GENERATE_GUIDANCE:g}), shipped model",
        ["phase", "seconds", "share %"],
        rows,
        [
            f"per denoising step: {denoise_s / settings.steps * 1e3:,.1f} ms; text encoding is the median of "
            f"{settings.repeats} encode_prompt calls, denoising and the rest come from one call, decoding from one "
            "decode_latents + postprocess_video"
        ],
    )


def bench_vae(settings: Settings) -> Table:
    """Table 6: the shipped VAE's time per video against the number of videos encoded or decoded together."""
    from diffusers import AutoencoderKLWan

    device = settings.device
    vae = AutoencoderKLWan.from_pretrained(default_model_dir() / "vae", torch_dtype=settings.dtype).to(device).eval()
    generator = torch.Generator("cpu").manual_seed(0)
    largest = max(settings.vae_batches)
    videos = torch.rand(largest, 3, GENERATE_FRAMES, GENERATE_SIZE, GENERATE_SIZE, generator=generator) * 2 - 1
    videos = videos.to(device, settings.dtype)
    rows, single = [], {}
    with torch.no_grad():
        latents = torch.cat([vae.encode(video[None]).latent_dist.mode() for video in videos])
        frames = torch.cat([vae.decode(latent[None]).sample for latent in latents])
        for batch in settings.vae_batches:
            log(f"vae: batches of {batch}")
            encode_s = median_seconds(lambda b=batch: vae.encode(videos[:b]), device, 1, settings.repeats) / batch
            decode_s = median_seconds(lambda b=batch: vae.decode(latents[:b]), device, 1, settings.repeats) / batch
            single.setdefault("encode", encode_s)
            single.setdefault("decode", decode_s)
            latent_err = (vae.encode(videos[:batch]).latent_dist.mode() - latents[:batch]).abs().max().item()
            frame_err = (vae.decode(latents[:batch]).sample - frames[:batch]).abs().max().item()
            rows.append([
                str(batch), fmt(encode_s * 1e3), fmt(single["encode"] / encode_s, 2) + "x", fmt(decode_s * 1e3),
                fmt(single["decode"] / decode_s, 2) + "x", f"{max(latent_err, frame_err):.1e}",
            ])
    return Table(
        f"6. VAE time per video against batch ({GENERATE_FRAMES} frames, {GENERATE_SIZE}x{GENERATE_SIZE}), "
        "shipped VAE",
        ["batch", "encode ms/video", "speedup", "decode ms/video", "speedup", "max abs diff"],
        rows,
        [f"median of {settings.repeats} calls after a warm-up; max abs diff: batched against one-at-a-time latents "
         "and frames (values in [-1, 1] and latent units)"],
    )


# Batches of configs/small/base.toml and sync.toml: groups x views per group.
TRAINING_BATCHES = {"base": (8, 1), "sync": (2, 4)}


def bench_training(settings: Settings) -> Table:
    """Table 7: one training step of stages base and sync, eager against compiled."""
    from diffusers import WanTransformer3DModel

    from syncammaster.training import FlowMatchingModule

    config = {k: v for k, v in settings.transformer_config.items() if not k.startswith("_")}
    rows = []
    for stage, (groups, views) in TRAINING_BATCHES.items():
        generator = torch.Generator().manual_seed(0)
        batch = {
            "latents": torch.randn(groups, views, config["in_channels"], LATENT_FRAMES, LATENT_SIZE, LATENT_SIZE,
                                   generator=generator),
            "prompt_embeds": torch.randn(groups, settings.text_tokens, config["text_dim"], generator=generator),
            "camera": torch.randn(groups, views, LATENT_FRAMES, 12, generator=generator),
        }
        batch = {k: v.to(settings.device) for k, v in batch.items()}
        seconds, compile_s = {}, 0.0
        for compiled in (False, True):
            log(f"training: stage {stage}, {'compiled' if compiled else 'eager'}")
            torch.manual_seed(0)
            transformer = WanTransformer3DModel.from_config(config)
            if stage == "sync":
                transformer = SynCamMasterTransformer3DModel.from_wan(transformer)
            module = FlowMatchingModule(transformer.to(settings.device).train(), learning_rate=1e-4)
            optimizer = torch.optim.AdamW(module.trainable_parameters(), lr=1e-4)
            if compiled:
                transformer.compile()

            def step(module=module, optimizer=optimizer, batch=batch):
                optimizer.zero_grad()
                module.loss(batch, torch.Generator().manual_seed(1)).backward()
                optimizer.step()

            first = median_seconds(step, settings.device, warmup=0, repeats=1)  # compiles, when compiled
            seconds[compiled] = median_seconds(step, settings.device, settings.warmup, settings.repeats)
            if compiled:
                compile_s = first - seconds[True]
        rows.append([
            stage, f"{groups} x {views}", fmt(seconds[False], 3), fmt(seconds[True], 3),
            fmt(seconds[False] / seconds[True], 2) + "x", fmt(compile_s),
        ])
    return Table(
        "7. Training step, eager against compiled (shipped size, 17 frames at 128x128)",
        ["stage", "groups x views", "eager s/step", "compiled s/step", "speedup", "compile s"],
        rows,
        [f"median of {settings.repeats} steps after {settings.warmup} warm-up steps; fp32; loss, backward and AdamW "
         "step, without Lightning or data loading"],
    )


# ---------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sweeps and 2 steps: a smoke test (about a minute)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to this markdown file")
    parser.add_argument("--tables", type=int, nargs="+", choices=range(1, 8), default=list(range(1, 8)),
                        metavar="N", help="which tables to make, 1-7 (default all)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = make_settings(args)
    header = describe_machine(settings)
    print("SynCamMaster speed and memory benchmark")
    print("\n".join(header), flush=True)

    tables = []

    def show(table: Table) -> None:
        tables.append(table)
        print("\n" + table.text(), flush=True)

    wanted = set(args.tables)
    if wanted & {1, 5}:
        log("matmul peak")
        views_table, flops_table = bench_views(settings, matmul_peak_gflops(settings))
    for number, bench in ((1, lambda _: views_table), (2, bench_tokens), (3, bench_reference), (4, bench_generate),
                          (5, lambda _: flops_table), (6, bench_vae), (7, bench_training)):
        if number in wanted:
            show(bench(settings))
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"\nload average (1, 5, 15 min) at end: {load_end}")

    if args.markdown is not None:
        lines = [f"- {line}" for line in header] + [f"- load average (1, 5, 15 min) at end: {load_end}"]
        args.markdown.write_text("\n\n".join(["\n".join(lines), *(t.markdown() for t in tables)]) + "\n")
        log(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
