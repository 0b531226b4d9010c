"""Denoising gain of the multi-view module: how much lower the flow-matching error is with MVS than without it.

For fixed view groups of a latent cache (``syncammaster cache``), fixed noise and a few noise levels sigma, the
transformer predicts the flow target (noise - x0) twice: with the multi-view synchronization module and with it
bypassed (the ``--no-sync`` ablation, which is the frozen base). The gain is ``1 - mse_sync / mse_no_sync``, in
percent, overall and per latent frame. Unlike the fidelity benchmark it needs no decoding and no feature matches, so
it separates small differences between sync stages; run it on the training cache and on a cache of held-out scenes
to see how much of the gain generalises.

Run from the repository root (about 40 s per cache for 24 groups of 4 views on a 2-core CPU):

    syncammaster render --scenes 24 --cameras 6 --frames 17 --size 128 --seed 9000 --out runs/heldout/data
    syncammaster cache runs/heldout/data --model runs/default_model/components --out runs/heldout/cache \\
        --frames 17 --height 128 --width 128 --max-sequence-length 64
    python benchmarks/mvs_gain.py --cache runs/default_model/cache runs/heldout/cache
"""

from __future__ import annotations

import argparse

import torch

from syncammaster.app import default_model_dir
from syncammaster.models import SynCamMasterTransformer3DModel

from harness import (
    Stopwatch,
    add_results_argument,
    machine_line,
    markdown_table,
    model_label,
    text_table,
    write_results,
)
from latent_groups import FlowInputs, add_group_arguments, check_group_arguments, load_groups, predict


def flow_errors(transformer, batch: dict, sigmas: list[float], seed: int, chunk: int) -> dict[float, torch.Tensor]:
    """Per-frame MSE of the flow prediction, (2, F): row 0 with MVS, row 1 without, for each sigma."""
    inputs = FlowInputs.of(batch, seed)
    errors = {}
    for sigma in sigmas:
        noisy, target, timestep = inputs.at(sigma)
        rows = []
        for camera in (inputs.camera, None):
            prediction = predict(transformer, noisy, timestep, inputs.context, camera, inputs.num_views, chunk)
            rows.append(((prediction - target) ** 2).mean(dim=(0, 1, 3, 4)))  # (F,)
        errors[sigma] = torch.stack(rows)  # (2, F)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_group_arguments(parser, groups=24)
    parser.add_argument("--cache", nargs="+", required=True, help="latent caches to score (syncammaster cache)")
    parser.add_argument("--max-azimuth", type=float, default=60.0, help="group limit, degrees (default 60)")
    parser.add_argument("--max-elevation", type=float, default=30.0, help="group limit, degrees (default 30)")
    add_results_argument(parser)
    args = parser.parse_args()
    check_group_arguments(parser, args)

    model = args.model or default_model_dir()
    transformer = SynCamMasterTransformer3DModel.from_pretrained(model, subfolder="transformer").eval()
    machine = machine_line()
    print(machine)
    print(f"model: {model}; {args.groups} groups of {args.views} views per cache, noise seed {args.seed}")
    report = []
    for cache in args.cache:
        batch = load_groups(cache, args.views, args.groups, args.seed, args.max_azimuth, args.max_elevation)
        with Stopwatch() as clock:
            errors = flow_errors(transformer, batch, args.sigmas, args.seed, args.chunk)
        rows = [["sigma", "mse sync", "mse no sync", "gain %", "gain % per latent frame"]]
        for sigma, (sync, plain) in errors.items():
            gain = 100 * (1 - sync.mean() / plain.mean())
            per_frame = " ".join(f"{100 * (1 - s / p):.1f}" for s, p in zip(sync, plain, strict=True))
            rows.append([f"{sigma:.2f}", f"{sync.mean():.4f}", f"{plain.mean():.4f}", f"{gain:.2f}", per_frame])
        print(f"\n{cache} ({clock.wall:.0f} s)")
        print(text_table(rows))
        report.append(f"`{cache}`, {args.groups} groups of {args.views} views, noise seed {args.seed} "
                      f"({clock.wall:.0f} s):\n\n{markdown_table(rows)}")
    if args.results:
        write_results("mvs_gain.py", "\n\n".join(report), machine, model_label(args.model))


if __name__ == "__main__":
    main()
