"""Tables 1, 2, 3 and 5 of the speed benchmark (``speed.py``): the transformer's forward against views and tokens,
with its peak memory, against the reference implementation, and its achieved FLOP rate."""

from __future__ import annotations

import ctypes
import functools
import gc
import multiprocessing
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from syncammaster import SynCamMasterTransformer3DModel

from harness import Table, fmt, median_seconds
from speed_config import (
    GENERATE_VIEWS,
    LATENT_FRAMES,
    MIB,
    MVS_MODULES,
    REFERENCE_HEADS,
    TESTS_DIR,
    Settings,
    Shape,
    build_transformer,
    cast_like_from_pretrained,
    log,
    make_inputs,
    max_relative_error,
)

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
    seconds = median_seconds(lambda: a @ b, settings.warmup + 1, max(settings.repeats, 5), settings.device)
    return 2 * n**3 / seconds / 1e9


# ---------------------------------------------------------------------------------------------------- benchmarks


def measure_forward(model, shape: Shape, settings: Settings) -> tuple[dict, float, float | None, str]:
    """One configuration: its inputs, the median forward time, and the forward's peak memory (with its method)."""
    inputs = make_inputs(shape, settings.transformer_config, settings.text_tokens, settings.device, settings.dtype)
    forward = functools.partial(model, **inputs)
    with torch.no_grad():
        seconds = median_seconds(forward, settings.warmup, settings.repeats, settings.device)
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
            ours_s = median_seconds(ours, settings.warmup, settings.repeats, settings.device)
            ref_s = median_seconds(ref, settings.warmup, settings.repeats, settings.device)
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
