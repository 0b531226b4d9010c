"""Per-step time of one sample split over CPU processes (torch.distributed, gloo) against one process.

The shipped small model at its default generate (4 views of the ``arc`` rig, 17 frames at 128x128, guidance 5):
each row runs in fresh processes started side by side in one run, times the denoising steps on rank 0 (median of
the steps after the first; wall time and rank 0's CPU time, steadier on a shared machine) and compares the final
latents with those of the one-process, one-thread row of the same guidance.
Rows: one process with 2 and with 1 thread; two processes with 1 thread each, which split the guidance branches
(guidance 5) or the views (guidance 1: 2 views each). On a machine with C cores, two processes of C/2 threads each
use the same cores as one process of C threads, so the split can only win where one process leaves cores idle
(small batches) or, as intended, on one GPU per process, where the per-step time approaches 1/N.

    python benchmarks/multiprocess.py --steps 6
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from syncammaster.app import default_model_dir
from syncammaster.cameras import CameraRig
from syncammaster.pipeline import load_model_folder

from harness import SHIPPED_MODEL, add_results_argument, load_average, machine_line, markdown_table, write_results

PROMPT = "a red sphere bounces on a checkered floor"


def _worker(rank: int, processes: int, threads: int, guidance: float, steps: int, folder: str) -> None:
    torch.set_num_threads(threads)
    group = None
    if processes > 1:
        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=processes)
        group = dist.group.WORLD
    pipe = load_model_folder(default_model_dir(), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    stamps: list[tuple[float, float]] = []  # (wall, this process's CPU time) after each step

    def stamp(pipe, step, timestep, tensors):
        stamps.append((time.perf_counter(), time.process_time()))
        return tensors

    latents = pipe(PROMPT, CameraRig.preset("arc", num_views=4), num_inference_steps=steps, guidance_scale=guidance,
                   seed=0, output_type="latent", callback_on_step_end=stamp, process_group=group).videos
    if rank == 0:
        np.savez(f"{folder}/out.npz", latents=latents.numpy(), step_seconds=np.diff(np.array(stamps), axis=0))
    if group is not None:
        dist.destroy_process_group()


def measure(processes: int, threads: int, guidance: float, steps: int) -> tuple[float, float, np.ndarray]:
    """(median wall and CPU seconds of rank 0 per step after the first, final latents) of one run in fresh
    processes."""
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(processes, threads, guidance, steps, folder), nprocs=processes, join=True)
        result = np.load(Path(folder) / "out.npz")
        wall, cpu = result["step_seconds"].T
        return statistics.median(wall.tolist()), statistics.median(cpu.tolist()), result["latents"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="denoising steps per run (the first is not timed)")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is not timed)")

    rows = [  # (processes, threads per process, guidance, what the processes split)
        (1, 2, 5.0, "-"),
        (1, 1, 5.0, "-"),
        (2, 1, 5.0, "guidance branches"),
        (1, 2, 1.0, "-"),
        (1, 1, 1.0, "-"),
        (2, 1, 1.0, "views (2 + 2)"),
    ]
    machine = machine_line()
    results = {row: measure(*row[:3], args.steps) for row in rows}
    print(f"shipped model, 4 views x 17 frames at 128x128, {args.steps} steps; s/step: median after the first step")
    print(f"machine at the start: {machine}; load average at the end {load_average()}\n")
    table = [["processes x threads", "guidance", "split", "s/step", "vs 1 x 1 thread", "rank 0 CPU s/step",
              "max abs latent diff to 1 process"]]
    for processes, threads, guidance, split in rows:
        seconds, cpu_seconds, latents = results[(processes, threads, guidance, split)]
        base_seconds, _, base_latents = results[(1, 1, guidance, "-")]
        difference = float(np.abs(latents - base_latents).max())
        table.append([f"{processes} x {threads}", f"{guidance:g}", split, f"{seconds:.3f}",
                      f"{base_seconds / seconds:.2f}x", f"{cpu_seconds:.3f}", f"{difference:.1e}"])
    print(markdown_table(table))
    if args.results:
        write_results("multiprocess.py", markdown_table(table) + f"\n\nLoad average after: {load_average()}.", machine,
                      SHIPPED_MODEL)

if __name__ == "__main__":
    main()
