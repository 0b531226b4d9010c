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

The settings and the transformer under test are in ``speed_config.py``, tables 1, 2, 3 and 5 in ``speed_forward.py``,
tables 4, 6 and 7 in ``speed_pipeline.py``; timing, tables and the machine line come from ``harness.py``.

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
import sys
from pathlib import Path

import diffusers
import torch
import transformers

from harness import Table, add_results_argument, load_average, machine_line, write_results
from speed_config import LATENT_FRAMES, LATENT_SIZE, Settings, log, make_settings
from speed_forward import bench_reference, bench_tokens, bench_views, matmul_peak_gflops
from speed_pipeline import bench_generate, bench_training, bench_vae


def describe_run(settings: Settings) -> list[str]:
    """The header: the command, the machine line, the model and the inputs."""
    cfg = settings.transformer_config
    heads, head_dim = cfg["num_attention_heads"], cfg["attention_head_dim"]
    dtype = str(settings.dtype).removeprefix("torch.")
    return [
        f"command: python {' '.join(sys.argv)}",
        f"machine: {machine_line(str(settings.device))}; interop threads {torch.get_num_interop_threads()}",
        f"model: shipped small config (D={heads * head_dim}, {heads} heads x {head_dim}, {cfg['num_layers']} layers, "
        f"FFN {cfg['ffn_dim']}, text dim {cfg['text_dim']}), random weights, {dtype}",
        f"inputs: {LATENT_FRAMES} latent frames of {LATENT_SIZE}x{LATENT_SIZE} latents unless stated, "
        f"{settings.text_tokens} text tokens, 1 prompt; median of {settings.repeats} runs after {settings.warmup} "
        "warm-up",
    ]


# ---------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sweeps and 2 steps: a smoke test (about a minute)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to this markdown file")
    parser.add_argument("--tables", type=int, nargs="+", choices=range(1, 8), default=list(range(1, 8)),
                        metavar="N", help="which tables to make, 1-7 (default all)")
    add_results_argument(parser)
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
    header = describe_run(settings)
    print("SynCamMaster speed and memory benchmark")
    print("\n".join(header), flush=True)

    tables = []

    def show(table: Table, number: int) -> None:
        tables.append(table)
        print("\n" + table.text(), flush=True)
        if args.results:
            model = ("the shipped small model's weights" if number in (4, 6) else
                     header[2].removeprefix("model: "))
            write_results(f"speed.py table {number}", table.body(), header[1].removeprefix("machine: "), model)

    wanted = set(args.tables)
    if wanted & {1, 5}:
        log("matmul peak")
        views_table, flops_table = bench_views(settings, matmul_peak_gflops(settings))
    for number, bench in ((1, lambda _: views_table), (2, bench_tokens), (3, bench_reference), (4, bench_generate),
                          (5, lambda _: flops_table), (6, bench_vae), (7, bench_training)):
        if number in wanted:
            show(bench(settings), number)
    load_end = load_average()
    print(f"\nload average (1, 5, 15 min) at end: {load_end}")

    if args.markdown is not None:
        lines = [f"- {line}" for line in header] + [f"- load average (1, 5, 15 min) at end: {load_end}"]
        args.markdown.write_text("\n\n".join(["\n".join(lines), *(t.markdown() for t in tables)]) + "\n")
        log(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
