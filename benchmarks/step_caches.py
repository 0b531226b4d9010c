"""Step caches (``generate --cache``), CPU decoding layout and ``--help`` start-up, measured side by side.

Run from the repository root:

    python benchmarks/step_caches.py [--quick] [--threads N] [--tables shipped big vae lite help ...]

Tables (each setting run once, one after another in this process; timings on a shared machine are noisy, so the
uncached row is run first and again last, and ratios are taken against the first):

- shipped: the default generate (4 views of the "arc" rig, 17 frames, 128x128, 50 steps, the model's guidance)
  with the model shipped in the package, seed 0, for each cache setting. "denoise s" is the call up to the latents
  (text encoding included, a few ms) and "denoise CPU s" the CPU time this process spent in it (all threads): on a
  machine shared with other jobs the wall time depends on their load, the CPU time much less, so "CPU speedup"
  (denoising only) is the steadier ratio. "call s" adds the VAE decoding of the 4 videos (median of the rows' decodes,
  the same for every row) and "speedup" is the whole call's. "FFN run %" / "attention run %" are the rows of the
  blocks' feed-forward and attention layers that really ran (counted by hooks on their first linear, which a cache
  hook skips), against the uncached call. "PSNR dB" compares
  the uint8 videos with the uncached ones (all views and frames; inf when equal). The last columns are
  ``syncammaster evaluate``'s consistency measures of the scene: SIFT matches per frame pair, their median
  epipolar (Sampson) distance in pixels, and the synchronization correlation.
- big: a 1.3B-shaped transformer (D=1536, 12 heads, FFN 8960, text dim 4096) with random weights and fewer layers
  (``--big-layers``, default 4: 30 are too slow for a CPU run of every setting), through the pipeline with a
  one-layer random text encoder, 2 views x 5 frames at 64x64, 20 steps, CFG 5; outputs compared as latents ("PSNR
  dB" over the uncached latents' range). Random weights have no consistency to measure.
- vae: the shipped VAE decoding the default generate's 4 videos with contiguous 3-D convolution weights and with
  channels-last ones (what ``decode_latents`` uses on a CPU), alternating, median of the repeats; max abs difference.
- lite: TaylorSeer-Lite schedules on the shipped model's default generate (as in "shipped"): for each pair
  (full first steps, interval) of ``--schedules``, the full steps of the 50, the denoising's CPU speedup and the PSNR
  to the uncached videos; how ``taylorseer-lite``'s schedule (``step_caches.TAYLORSEER_LITE_FULL_FIRST_STEPS``, its
  default interval) was chosen.
- help: ``syncammaster --help`` wall time in a fresh process (median of 5), against a process that only imports what
  the argument declarations used to import (torch, diffusers and the pipeline module).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from syncammaster import CameraRig, SynCamMasterPipeline
from syncammaster.app import default_model_dir, generated_scene
from syncammaster.evaluate import evaluate_scene
from syncammaster.pipeline import use_channels_last_3d
from syncammaster.step_caches import STEP_CACHE_METHODS, step_cache_config

from harness import (
    SHIPPED_MODEL,
    Stopwatch,
    add_results_argument,
    load_average,
    machine_line,
    markdown_table,
    median_seconds,
    run_timed,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "A large red sphere bounces near a small blue cube, on a grey stone floor under a clear sky."
# (method, knob); None = uncached.
SETTINGS = [
    (None, None),
    ("first-block", 0.05),
    ("first-block", 0.1),
    ("first-block", 0.2),
    ("first-block", 0.3),
    ("taylorseer", 3),
    ("pyramid-attention", 2),
    ("faster", 2),
    (None, None),
]
QUICK_SETTINGS = [(None, None), ("first-block", 0.1), ("taylorseer", 3), ("pyramid-attention", 2), ("faster", 2)]


class WorkCounter:
    """Rows that the blocks' attention layers and feed-forwards really computed (hooks on their first linear)."""

    def __init__(self, transformer) -> None:
        self.rows = {"attention": 0, "ffn": 0}
        for block in transformer.blocks:
            for attention in (block.attn1, block.mvs_attn, block.attn2):
                attention.to_q.register_forward_hook(self._counter("attention"))
            block.ffn.net[0].register_forward_hook(self._counter("ffn"))

    def _counter(self, kind):
        def count(module, inputs, output):
            self.rows[kind] += inputs[0].shape[0]

        return count

    def reset(self) -> None:
        self.rows = dict.fromkeys(self.rows, 0)


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def chosen_settings(args) -> list[tuple[str | None, float | None]]:
    """``--settings`` (``none`` or ``NAME:KNOB``; the uncached run comes first), else the table's defaults."""
    if not args.settings:
        return QUICK_SETTINGS if args.quick else SETTINGS
    settings = [(None, None)]
    for text in args.settings:
        if text != "none":
            name, knob = text.split(":")
            settings.append((name, float(knob)))
    return settings


def label(name, knob) -> str:
    return "none" if name is None else f"{name} {knob:g}"


def run_settings(pipe, settings, call_kwargs, decode, score):
    """Rows of (setting, seconds, work, output, scores) for every cache setting, side by side."""
    counter = WorkCounter(pipe.transformer)
    transformer = pipe.transformer
    results = []
    for name, knob in settings:
        if name is not None:
            transformer.enable_cache(step_cache_config(name, knob, lambda: transformer.current_timestep))
        counter.reset()
        with Stopwatch() as clock:
            latents = pipe(**call_kwargs, output_type="latent").videos
        seconds, cpu_seconds = clock.wall, clock.cpu
        work = dict(counter.rows)
        if name is not None:
            transformer.disable_cache()
        output = decode(latents)
        results.append({"setting": label(name, knob), "seconds": seconds, "cpu_seconds": cpu_seconds, "work": work,
                        "output": output, "scores": score(output)})
        print(f"  {label(name, knob)}: {seconds:.1f} s, CPU {cpu_seconds:.1f} s, {work}", flush=True)
    return results


def results_table(results, decode_seconds, peak, consistency: bool) -> str:
    base = results[0]
    header = ["cache", "denoise s", "denoise CPU s", "call s", "speedup", "CPU speedup", "FFN run %", "attention run %",
              "PSNR dB"]
    if consistency:
        header += ["matches/frame", "epipolar px", "sync corr"]
    rows = [header]
    for row in results:
        call = row["seconds"] + decode_seconds
        speedup = (base["seconds"] + decode_seconds) / call
        ffn = 100 * row["work"]["ffn"] / base["work"]["ffn"]
        attention = 100 * row["work"]["attention"] / base["work"]["attention"]
        quality = psnr(row["output"], base["output"], peak)
        cpu_speedup = base["cpu_seconds"] / row["cpu_seconds"]
        line = [row["setting"], f"{row['seconds']:.1f}", f"{row['cpu_seconds']:.1f}", f"{call:.1f}", f"{speedup:.2f}",
                f"{cpu_speedup:.2f}", f"{ffn:.0f}", f"{attention:.0f}", f"{quality:.1f}"]
        if consistency:
            s = row["scores"]
            line += [f"{s['matches']:.1f}", f"{s['epipolar']:.2f}", f"{s['sync']:.3f}"]
        rows.append(line)
    return markdown_table(rows)


def table_shipped(args) -> str:
    pipe = SynCamMasterPipeline.from_pretrained(default_model_dir())
    pipe.set_progress_bar_config(disable=True)
    rig = CameraRig.preset("arc", num_views=4)
    steps = 10 if args.quick else 50
    call_kwargs = {"prompt": PROMPT, "rig": rig, "num_inference_steps": steps, "seed": 0}
    decode_seconds = []

    def decode(latents):
        with Stopwatch() as clock, torch.no_grad():
            frames = pipe.video_processor.postprocess_video(pipe.decode_latents(latents), output_type="np")
        decode_seconds.append(clock.wall)
        return (frames * 255).round().clip(0, 255).astype(np.uint8)  # (V, T, H, W, 3)

    def score(videos):
        scene = generated_scene(pipe, [v.astype(np.float32) / 255 for v in videos], rig, PROMPT, 15.0)
        summary = evaluate_scene(scene).report["summary"]
        return {"matches": summary["matches_per_frame"] or 0.0,
                "epipolar": (summary["epipolar"] or {}).get("median_px", math.nan),
                "sync": summary["sync_corr"] or math.nan}

    print(f"\n## shipped model: default generate, 4 views x 17 frames, 128x128, {steps} steps, seed 0", flush=True)
    results = run_settings(pipe, chosen_settings(args), call_kwargs, decode, score)
    decoding = statistics.median(decode_seconds)
    return (results_table(results, decoding, 255.0, consistency=True)
            + f"\n\nVAE decoding of the 4 videos: median {decoding:.1f} s, in every row's call time.")


def big_pipeline(num_layers: int) -> SynCamMasterPipeline:
    sys.path.insert(0, str(ROOT / "tests"))
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from syncammaster import SynCamMasterTransformer3DModel
    from syncammaster.text import build_caption_tokenizer

    torch.manual_seed(0)
    tokenizer = build_caption_tokenizer([PROMPT])
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=4096, d_kv=8, d_ff=32, num_layers=1,
                                               num_heads=2, relative_attention_num_buckets=8)).eval()
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True]).eval()
    base = WanTransformer3DModel(num_attention_heads=12, attention_head_dim=128, text_dim=4096, freq_dim=256,
                                 ffn_dim=8960, num_layers=num_layers, cross_attn_norm=True)
    transformer = SynCamMasterTransformer3DModel.from_wan(base)
    with torch.no_grad():  # a trained-looking MVS path: small random weights instead of the zero initialisation
        for p in transformer.mvs_parameters():
            p.add_(0.02 * torch.randn_like(p))
    return SynCamMasterPipeline(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer.eval(), vae=vae,
                                scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), max_sequence_length=16)


def table_big(args) -> str:
    pipe = big_pipeline(args.big_layers)
    pipe.set_progress_bar_config(disable=True)
    rig = CameraRig.preset("arc", num_views=2)
    steps = 8 if args.quick else 20
    call_kwargs = {"prompt": PROMPT, "rig": rig, "num_inference_steps": steps, "seed": 0, "height": 64, "width": 64,
                   "num_frames": 5, "guidance_scale": 5.0}
    print(f"\n## 1.3B-shaped random transformer, {args.big_layers} layers: 2 views x 5 frames, 64x64, {steps} steps",
          flush=True)
    results = run_settings(pipe, chosen_settings(args), call_kwargs,
                           lambda latents: latents.float().numpy(), lambda output: {})
    peak = float(results[0]["output"].max() - results[0]["output"].min())
    return results_table(results, 0.0, peak, consistency=False)


def table_vae(args) -> str:
    pipe = SynCamMasterPipeline.from_pretrained(default_model_dir())
    contiguous = pipe.vae
    channels_last = copy.deepcopy(contiguous)
    use_channels_last_3d(channels_last)
    latents = torch.randn(4, 16, 5, 16, 16, generator=torch.Generator().manual_seed(0))  # the default generate's
    times = {"contiguous": [], "channels_last_3d": []}
    outputs = {}
    with torch.no_grad():
        for _ in range(2 if args.quick else 4):
            for name, vae in (("contiguous", contiguous), ("channels_last_3d", channels_last)):
                with Stopwatch() as clock:
                    outputs[name] = vae.decode(latents, return_dict=False)[0]
                times[name].append(clock.wall)
    first, second = (statistics.median(times[name][1:]) for name in times)  # the first repeat warms up
    difference = (outputs["contiguous"] - outputs["channels_last_3d"]).abs().max().item()
    print("\n## VAE decoding of the default generate's 4 videos (4 x 17 frames, 128x128)\n")
    return markdown_table([["weights", "median s", "speedup", "max abs diff"],
                           ["contiguous", f"{first:.2f}", "1.00", ""],
                           ["channels_last_3d", f"{second:.2f}", f"{first / second:.2f}", f"{difference:.1e}"]])


def table_help(args) -> str:
    def process_seconds(command) -> float:
        return median_seconds(lambda: run_timed(command, cwd=ROOT), warmup=0, repeats=5)

    help_seconds = process_seconds([sys.executable, "-m", "syncammaster.cli", "--help"])
    heavy = process_seconds([sys.executable, "-c", "import torch, diffusers, syncammaster.pipeline"])
    print("\n## start-up\n")
    return markdown_table([
        ["process", "median s"],
        ["syncammaster --help", f"{help_seconds:.2f}"],
        ["import torch, diffusers, syncammaster.pipeline (what --help used to load)", f"{heavy:.2f}"],
    ])


def table_lite(args) -> str:
    from diffusers.hooks import TaylorSeerCacheConfig

    pipe = SynCamMasterPipeline.from_pretrained(default_model_dir())
    pipe.set_progress_bar_config(disable=True)
    call_kwargs = {"prompt": PROMPT, "rig": CameraRig.preset("arc", num_views=4), "num_inference_steps": 50, "seed": 0}

    def run(config):
        if config is not None:
            pipe.transformer.enable_cache(config)
        with Stopwatch() as clock:
            latents = pipe(**call_kwargs, output_type="latent").videos
        if config is not None:
            pipe.transformer.disable_cache()
        with torch.no_grad():
            frames = pipe.video_processor.postprocess_video(pipe.decode_latents(latents), output_type="np")
        return clock.cpu, (frames * 255).round().clip(0, 255).astype(np.uint8)

    base_seconds, base = run(None)
    print("\n## TaylorSeer-Lite schedules, shipped model, default generate\n")
    rows = [["full first steps", "then every", "full steps of 50", "CPU speedup", "PSNR dB"]]
    for text in args.schedules:
        first, interval = (int(x) for x in text.split(":"))
        full = first + sum(1 for step in range(first, 50) if (step - first - 1) % interval == 0)
        seconds, videos = run(TaylorSeerCacheConfig(cache_interval=interval, disable_cache_before_step=first,
                                                    max_order=1, taylor_factors_dtype=torch.float32,
                                                    use_lite_mode=True))
        rows.append([str(first), str(interval), str(full), f"{base_seconds / seconds:.2f}",
                     f"{psnr(videos, base, 255.0):.1f}"])
        print(f"  {first}:{interval} done", flush=True)
    return markdown_table(rows)


TABLES = {"shipped": table_shipped, "big": table_big, "vae": table_vae, "lite": table_lite, "help": table_help}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and settings: a smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--big-layers", type=int, default=4, help="layers of the 1.3B-shaped model (default 4)")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--settings", nargs="+", default=None, metavar="NAME:KNOB",
                        help="cache settings to run after the uncached one, e.g. first-block:0.2 taylorseer:3")
    parser.add_argument("--schedules", nargs="+", metavar="FIRST:INTERVAL",
                        default=["3:5", "4:6", "5:7", "6:8", "6:9", "8:10", "3:6", "2:6"],
                        help="table lite: TaylorSeer-Lite schedules, full first steps and interval")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = machine_line()
    print(f"{machine}; step caches: {', '.join(STEP_CACHE_METHODS)}")
    for name in args.tables:
        text = TABLES[name](args)
        print(f"\n{text}", flush=True)
        if args.results:
            model = "a random 1.3B-shaped transformer" if name == "big" else SHIPPED_MODEL
            write_results(f"step_caches.py {name}", text + f"\n\nLoad average after: {load_average()}.", machine,
                          model)
    print(f"\nload average (1, 5, 15 min) at end: {load_average()}")


if __name__ == "__main__":
    main()
