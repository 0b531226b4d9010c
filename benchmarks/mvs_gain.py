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
import time

import torch

from syncammaster.app import default_model_dir
from syncammaster.data import LatentViewDataset, collate_views
from syncammaster.data.cache_files import read_cache_config
from syncammaster.evaluate.report import text_table
from syncammaster.models import SynCamMasterTransformer3DModel
from syncammaster.training.modules import NUM_TRAIN_TIMESTEPS


@torch.no_grad()
def flow_errors(transformer, batch: dict, sigmas: list[float], seed: int, chunk: int) -> dict[float, torch.Tensor]:
    """Per-frame MSE of the flow prediction, (2, F): row 0 with MVS, row 1 without, for each sigma."""
    latents = batch["latents"]  # (B, V, C, F, h, w)
    batch_size, num_views = latents.shape[:2]
    x0 = latents.flatten(0, 1)  # (B*V, C, F, h, w), view-major
    camera = batch["camera"].flatten(0, 1)  # (B*V, F, 12)
    context = batch["prompt_embeds"].repeat_interleave(num_views, dim=0)  # (B*V, L, D)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    chunk = max(num_views, chunk - chunk % num_views)  # whole groups per forward
    errors = {}
    for sigma in sigmas:
        noisy, target = (1 - sigma) * x0 + sigma * noise, noise - x0
        timestep = torch.full((len(x0),), sigma * NUM_TRAIN_TIMESTEPS)  # as FlowSchedule maps sigmas
        rows = []
        for sync in (True, False):
            predictions = []
            for start in range(0, len(x0), chunk):
                part = slice(start, start + chunk)
                kwargs = {"camera_embedding": camera[part], "num_views": num_views} if sync else {}
                predictions.append(transformer(noisy[part], timestep[part], context[part], return_dict=False,
                                               **kwargs)[0])
            prediction = torch.cat(predictions)  # (B*V, C, F, h, w)
            rows.append(((prediction - target) ** 2).mean(dim=(0, 1, 3, 4)))  # (F,)
        errors[sigma] = torch.stack(rows)  # (2, F)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="SynCamMaster folder (default: the shipped small model)")
    parser.add_argument("--cache", nargs="+", required=True, help="latent caches to score (syncammaster cache)")
    parser.add_argument("--views", type=int, default=4, help="views per group (default 4)")
    parser.add_argument("--groups", type=int, default=24, help="view groups per cache (default 24)")
    parser.add_argument("--max-azimuth", type=float, default=60.0, help="group limit, degrees (default 60)")
    parser.add_argument("--max-elevation", type=float, default=30.0, help="group limit, degrees (default 30)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.85, 0.95])
    parser.add_argument("--seed", type=int, default=0, help="seed of the group draws and the noise (default 0)")
    parser.add_argument("--chunk", type=int, default=16, help="videos per forward (default 16)")
    args = parser.parse_args()
    if any(not 0.0 < sigma <= 1.0 for sigma in args.sigmas):
        parser.error(f"--sigmas must lie in (0, 1], got {args.sigmas}")

    model = args.model or default_model_dir()
    transformer = SynCamMasterTransformer3DModel.from_pretrained(model, subfolder="transformer").eval()
    print(f"model: {model}; {args.groups} groups of {args.views} views per cache, noise seed {args.seed}")
    for cache in args.cache:
        config = read_cache_config(cache)
        dataset = LatentViewDataset.from_cache(cache, num_views=args.views, max_az=args.max_azimuth,
                                               max_el=args.max_elevation, seed=args.seed, length=args.groups,
                                               max_sequence_length=config["max_sequence_length"])
        batch = collate_views([dataset[i] for i in range(len(dataset))])
        started = time.perf_counter()
        errors = flow_errors(transformer, batch, args.sigmas, args.seed, args.chunk)
        rows = [["sigma", "mse sync", "mse no sync", "gain %", "gain % per latent frame"]]
        for sigma, (sync, plain) in errors.items():
            gain = 100 * (1 - sync.mean() / plain.mean())
            per_frame = " ".join(f"{100 * (1 - s / p):.1f}" for s, p in zip(sync, plain, strict=True))
            rows.append([f"{sigma:.2f}", f"{sync.mean():.4f}", f"{plain.mean():.4f}", f"{gain:.2f}", per_frame])
        print(f"\n{cache} ({time.perf_counter() - started:.0f} s)")
        print(text_table(rows))


if __name__ == "__main__":
    main()
