"""One training step of the sync stage on 1 and on 2 processes (Lightning DDP), the global batch fixed.

The shipped small model's transformer (its MVS module trained, the rest frozen, fp32) on the shipped sync stage's
global batch: 2 groups of 4 views, 17 frames at 128x128 (5 x 16 x 16 latents), 64 text tokens, random latents drawn
per item. Each row runs the real runner (``training.runner.fit``: Lightning, the step sampler, metrics) in a fresh
command, so process start-up is not timed; rank 0 stamps the end of every step, and the table gives the median
wall and rank-0 CPU seconds per step after the warm-up steps. Rows: one process of batch 2 with 1 thread (the
reference) and with 2, two processes of batch 1 with 1 thread each (DDP over gloo, gradients all-reduced every
step). "speed" is the reference's wall time over the row's; the last column is the largest difference of the trained
weights from the reference's: the processes train the same model.

On a machine with C cores, two processes of C/2 threads use the cores one process of C threads uses: on a CPU the
split can only win where one process leaves cores idle; on one GPU per process the step time approaches 1/N.

    python benchmarks/train_step.py --steps 12

With ``--lora-ranks R ...`` it compares instead, in one process of batch 2 (``--threads`` threads), what a step
costs when it trains the multi-view module alone (the reference) against a novel-view LoRA of each rank R over the
frozen model (``lora_targets``' default layers, alpha = R), every group with a given view (``reference_view_prob``
1.0, as a novel-view fine-tune trains):

    python benchmarks/train_step.py --steps 12 --lora-ranks 16 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from safetensors.torch import load_file, save_file

from syncammaster.app import default_model_dir
from syncammaster.lora import add_novel_view_adapter
from syncammaster.models import SynCamMasterTransformer3DModel
from syncammaster.training import FlowMatchingModule
from syncammaster.training.config import DEFAULT_LORA_TARGETS, config_from_dict
from syncammaster.training.runner import fit

from harness import add_results_argument, load_average, machine_line, markdown_table, write_results

GLOBAL_GROUPS, VIEWS, LATENT_FRAMES, LATENT_SIZE, TEXT_TOKENS = 2, 4, 5, 16, 64  # configs/small/sync.toml's batch
ROWS = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process); the first is the reference


class RandomGroups(torch.utils.data.Dataset):
    """Item i: a group of latents, a caption embedding and cameras drawn from a generator seeded with i."""

    def __init__(self, channels: int, text_dim: int, length: int):
        self.channels, self.text_dim, self.length = channels, text_dim, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        return {
            "latents": torch.randn(VIEWS, self.channels, LATENT_FRAMES, LATENT_SIZE, LATENT_SIZE, generator=generator),
            "prompt_embeds": torch.randn(TEXT_TOKENS, self.text_dim, generator=generator),
            "camera": torch.randn(VIEWS, LATENT_FRAMES, 12, generator=generator),
        }


class StepStamps(pl.Callback):
    """Rank 0's wall and CPU clocks at the end of every optimisation step."""

    def __init__(self):
        self.stamps: list[tuple[float, float]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index):
        if trainer.global_rank == 0:
            self.stamps.append((time.perf_counter(), time.process_time()))


class TimedModule(FlowMatchingModule):
    """The stage's module with the step clock as its own callback (Lightning adds it to the runner's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = StepStamps()

    def configure_callbacks(self):
        return [self.clock]


def run_row(processes: int, steps: int, out: Path, lora_rank: int = 0, reference_view_prob: float = 0.0) -> None:
    """One row, in this process (and the ones Lightning's launcher starts for ranks 1..N-1 with the same command)."""
    transformer = SynCamMasterTransformer3DModel.from_pretrained(default_model_dir() / "transformer").train()
    if lora_rank:
        add_novel_view_adapter(transformer, lora_rank, DEFAULT_LORA_TARGETS)
    module = TimedModule(transformer, learning_rate=1e-4, reference_view_prob=reference_view_prob)
    config = config_from_dict({
        "stage": "sync", "data_root": str(out), "output_dir": str(out / f"run{processes}"), "components": str(out),
        "base_model": str(out), "max_steps": steps, "batch_size": GLOBAL_GROUPS // processes, "devices": processes,
        "strategy": "ddp" if processes > 1 else "auto", "num_workers": 0, "checkpoint_every": steps + 1,
        "gradient_checkpointing": False, "bf16_timesteps": False,
    })
    dataset = RandomGroups(transformer.config.in_channels, transformer.config.text_dim, steps * GLOBAL_GROUPS)
    trainer = fit(config, module, dataset, restart=True, progress_bar=False)
    if trainer.global_rank == 0:
        (out / "stamps.json").write_text(json.dumps(module.clock.stamps))
        (out / "trainable.json").write_text(json.dumps(sum(p.numel() for p in module.trainable_parameters())))
        trained = {name: p.detach().contiguous() for name, p in module._named_trainable()}
        save_file(trained, out / "mvs.safetensors")


def measure(processes: int, threads: int, steps: int, warmup: int, first_weights: Path | None, folder: Path,
            lora_rank: int | None = None) -> tuple[dict, Path]:
    """One row in a fresh command; ``lora_rank`` (0: the module alone) makes it a row of the LoRA comparison."""
    out = folder / f"p{processes}t{threads}r{lora_rank}"
    out.mkdir()
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, str(Path(__file__).resolve()), "--row", str(processes), "--steps", str(steps),
               "--out", str(out)]
    if lora_rank is not None:
        command += ["--lora-rank", str(lora_rank)]
    subprocess.run(command, env=environment, check=True)
    stamps = json.loads((out / "stamps.json").read_text())
    wall = [b[0] - a[0] for a, b in zip(stamps, stamps[1:], strict=False)][warmup:]
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:], strict=False)][warmup:]
    weights = out / "mvs.safetensors"
    difference = 0.0
    if first_weights is not None:
        ours, theirs = load_file(weights), load_file(first_weights)
        difference = max((ours[k] - theirs[k]).abs().max().item() for k in theirs)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu), "difference": difference,
            "timed": len(wall), "trainable": json.loads((out / "trainable.json").read_text())}, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="optimisation steps per row (12)")
    parser.add_argument("--warmup", type=int, default=2, help="first step intervals left out of the median (2)")
    parser.add_argument("--lora-ranks", type=int, nargs="+", default=None, metavar="R",
                        help="compare the module-only step with novel-view LoRAs of these ranks instead")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the --lora-ranks rows (1)")
    parser.add_argument("--row", type=int, default=None, help=argparse.SUPPRESS)  # processes of one row
    parser.add_argument("--lora-rank", type=int, default=None, help=argparse.SUPPRESS)  # a LoRA comparison row
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    add_results_argument(parser)
    args = parser.parse_args()
    if args.row is not None:
        lora_rows = args.lora_rank is not None
        run_row(args.row, args.steps, args.out, args.lora_rank or 0, reference_view_prob=1.0 if lora_rows else 0.0)
        return
    if args.lora_ranks is not None:
        compare_lora(args)
        return

    machine = f"{machine_line()}, lightning {pl.__version__}"
    print(f"machine: {machine}")
    results, first_weights = [], None
    with tempfile.TemporaryDirectory() as folder:
        for processes, threads in ROWS:
            print(f"row: {processes} process(es) x {threads} thread(s)", file=sys.stderr)
            result, weights = measure(processes, threads, args.steps, args.warmup, first_weights, Path(folder))
            first_weights = first_weights or weights
            results.append((processes, threads, result))
        base = results[0][2]
        print(f"\n{args.steps} steps per row; median of the last {base['timed']} step intervals on rank 0\n")
        table = [["processes x batch", "threads each", "s/step (wall)", "rank-0 CPU s/step",
                  "speed vs 1 x 2, 1 thread", "max abs weight difference from 1 x 2, 1 thread"]]
        for processes, threads, result in results:
            table.append([f"{processes} x {GLOBAL_GROUPS // processes}", str(threads), f"{result['wall']:.3f}",
                          f"{result['cpu']:.3f}", f"{base['wall'] / result['wall']:.2f}x",
                          f"{result['difference']:.1e}"])
        print(markdown_table(table))
    print(f"\nload average (1, 5, 15 min) at end: {load_average()}")
    if args.results:
        write_results("train_step.py processes", markdown_table(table) + f"\n\n{args.steps} steps per row; median of "
                      f"the last {base['timed']} step intervals on rank 0. Load average after: {load_average()}.",
                      machine, "the shipped small model's transformer (its multi-view module trained)")


def compare_lora(args) -> None:
    machine = machine_line()
    print(f"machine: {machine}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for rank in [0, *args.lora_ranks]:
            print(f"row: {'the module alone' if rank == 0 else f'LoRA rank {rank}'}", file=sys.stderr)
            results.append((rank, measure(1, args.threads, args.steps, args.warmup, None, Path(folder), rank)[0]))
    base = results[0][1]
    print(f"\n{args.steps} steps per row, 1 process x {GLOBAL_GROUPS} groups of {VIEWS} views, {args.threads} "
          f"thread(s); median of the last {base['timed']} step intervals\n")
    table = [["trained", "trainable parameters", "s/step (wall)", "CPU s/step", "wall vs the module alone",
              "CPU vs the module alone"]]
    for rank, result in results:
        name = "multi-view module alone" if rank == 0 else f"LoRA rank {rank} (base and module frozen)"
        table.append([name, f"{result['trainable']:,}", f"{result['wall']:.3f}", f"{result['cpu']:.3f}",
                      f"{result['wall'] / base['wall']:.2f}x", f"{result['cpu'] / base['cpu']:.2f}x"])
    print(markdown_table(table))
    print(f"\nload average (1, 5, 15 min) at end: {load_average()}")
    if args.results:
        write_results("train_step.py lora", markdown_table(table) + f"\n\n{args.steps} steps per row; median of the "
                      f"last {base['timed']} step intervals. Load average after: {load_average()}.", machine,
                      "the shipped small model's transformer")


if __name__ == "__main__":
    main()
