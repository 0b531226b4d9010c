"""View groups of a latent cache as the denoising benchmarks score them (``mvs_gain.py``, ``reference_gain.py``):
fixed groups drawn with a seed, their flow-matching inputs at a noise level, and the transformer's predictions in
chunks of whole groups."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from syncammaster.data import LatentViewDataset, collate_views
from syncammaster.data.latent_cache_files import read_cache_config
from syncammaster.training.modules import NUM_TRAIN_TIMESTEPS


def add_group_arguments(parser: argparse.ArgumentParser, groups: int) -> None:
    """The flags both benchmarks take: the model, the views and groups drawn, the noise levels, seed and chunk."""
    parser.add_argument("--model", default=None, help="SynCamMaster folder (default: the shipped small model)")
    parser.add_argument("--views", type=int, default=4, help="views per group (default 4)")
    parser.add_argument("--groups", type=int, default=groups, help=f"view groups per cache (default {groups})")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.85, 0.95])
    parser.add_argument("--seed", type=int, default=0, help="seed of the group draws and the noise (default 0)")
    parser.add_argument("--chunk", type=int, default=16, help="videos per forward (default 16)")


def check_group_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if any(not 0.0 < sigma <= 1.0 for sigma in args.sigmas):
        parser.error(f"--sigmas must lie in (0, 1], got {args.sigmas}")


def load_groups(cache: str, num_views: int, groups: int, seed: int, max_azimuth: float = 60.0,
                max_elevation: float = 30.0) -> dict:
    """``groups`` view groups of ``num_views`` cameras drawn from a latent cache with ``seed``, collated: latents
    (B, V, C, F, h, w), prompt_embeds (B, L, D), camera (B, V, F, 12)."""
    config = read_cache_config(cache)
    dataset = LatentViewDataset.from_cache(cache, num_views=num_views, max_az=max_azimuth, max_el=max_elevation,
                                           seed=seed, length=groups, max_sequence_length=config["max_sequence_length"])
    return collate_views([dataset[i] for i in range(len(dataset))])


@dataclass
class FlowInputs:
    """The groups' videos folded into the batch, view-major, with one fixed noise draw."""

    x0: torch.Tensor  # (B*V, C, F, h, w) clean latents
    camera: torch.Tensor  # (B*V, F, 12)
    context: torch.Tensor  # (B*V, L, D) each group's caption, repeated per view
    noise: torch.Tensor  # (B*V, C, F, h, w)
    num_views: int

    @classmethod
    def of(cls, batch: dict, seed: int) -> FlowInputs:
        latents = batch["latents"]  # (B, V, C, F, h, w)
        num_views = latents.shape[1]
        x0 = latents.flatten(0, 1)
        return cls(x0, batch["camera"].flatten(0, 1), batch["prompt_embeds"].repeat_interleave(num_views, dim=0),
                   torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)), num_views)

    def at(self, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, flow target noise - x0, timesteps) at noise level ``sigma``, as training draws them."""
        noisy, target = (1 - sigma) * self.x0 + sigma * self.noise, self.noise - self.x0
        timestep = torch.full((len(self.x0),), sigma * NUM_TRAIN_TIMESTEPS)  # as FlowSchedule maps sigmas
        return noisy, target, timestep


@torch.no_grad()
def predict(transformer, noisy: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
            camera: torch.Tensor | None, num_views: int, chunk: int) -> torch.Tensor:
    """The flow prediction (B*V, C, F, h, w), ``chunk`` videos (rounded to whole groups) per forward; ``camera=None``
    bypasses the multi-view module (the no-sync ablation)."""
    chunk = max(num_views, chunk - chunk % num_views)  # whole groups per forward
    out = []
    for start in range(0, len(noisy), chunk):
        part = slice(start, start + chunk)
        kwargs = {"camera_embedding": camera[part], "num_views": num_views} if camera is not None else {}
        out.append(transformer(noisy[part], timestep[part], context[part], return_dict=False, **kwargs)[0])
    return torch.cat(out)
