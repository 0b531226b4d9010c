"""Training data over a latent cache: groups of V synchronized views of one scene, with their caption and cameras.

Each item is one ordered view group (:mod:`syncammaster.data.views`) of one cached scene:

    latents        (V, C, F_latent, h, w) float32   cached normalised VAE latents, view 0 first
    prompt_embeds  (max_sequence_length, D) float32 the caption's UMT5 embeddings, zero-padded
    camera         (V, F_latent, 12) float32        CameraRig.embedding of exactly that group (view 0 = identity)
    scene          str                              "<subset>/<scene>"
    views          list[str]                        the V camera names

``num_views=1`` gives single-view clips for the base text-to-video stage. With ``length=None`` the dataset lists every
valid ordered group once (for V = 1: every cached video); with ``length=N`` item i is drawn from ``(seed, i)``: a scene
uniformly, then one of its valid ordered groups uniformly (as the release draws a scene, then a pair of its list).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from ..cameras import CameraRig
from ..encoding import pad_prompt_embeds
from .index import DatasetError, DataWarning, IndexedScene, SceneIndex
from .latent_cache_files import (
    CACHE_INDEX_FILE,
    latents_file,
    read_cache_config,
    read_latents,
    read_prompt_embeds,
    text_file,
)
from .views import DEFAULT_MAX_AZIMUTH, DEFAULT_MAX_ELEVATION, view_combinations

__all__ = ["LatentViewDataset", "collate_views"]

MAX_EXAMPLES = 3


def _nth_permutation(items: Sequence[int], k: int) -> tuple[int, ...]:
    """The k-th ordering of ``items`` in ``itertools.permutations`` order (factorial number system)."""
    pool, ordering = list(items), []
    for position in range(len(pool), 0, -1):
        choice, k = divmod(k, math.factorial(position - 1))
        ordering.append(pool.pop(choice))
    return tuple(ordering)


class LatentViewDataset(torch.utils.data.Dataset):
    """View groups of cached scenes (module docstring).

    Args:
        index: the scenes the cache was made from (e.g. ``SceneIndex.load(CACHE / "scene_index.json")``).
        cache_dir: a latent cache written by ``cache_dataset``; its config gives the number of video frames.
        num_views: V, views per item (1: single-view clips).
        max_az, max_el: pairwise azimuth / elevation limits of a group, degrees, exclusive (release: 30, 15).
        max_sequence_length: caption tokens after padding; must be the cache's.
        seed: with ``length``, the seed of the item draws.
        length: number of items drawn; None lists every valid ordered group once.

    Scenes whose cache is incomplete (a caption or a video not encoded) and scenes without a valid group are left out
    when the dataset is built, with one counted :class:`DataWarning`.
    """

    def __init__(
        self,
        index: SceneIndex,
        cache_dir: str | Path,
        num_views: int,
        max_az: float = DEFAULT_MAX_AZIMUTH,
        max_el: float = DEFAULT_MAX_ELEVATION,
        max_sequence_length: int = 512,
        seed: int = 0,
        length: int | None = None,
    ) -> None:
        # 1. The cache's settings.
        self.cache_dir = Path(cache_dir)
        config = read_cache_config(self.cache_dir)
        if max_sequence_length != config["max_sequence_length"]:
            raise DatasetError(
                f"max_sequence_length={max_sequence_length} but the cache {cache_dir} holds captions encoded with "
                f"max_sequence_length={config['max_sequence_length']}; use that, or cache again"
            )
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
            raise DatasetError(f"length must be a positive integer or None, got {length!r}")
        self.num_frames = config["num_frames"]
        self.temporal_stride = config["temporal_stride"]
        self.num_views = num_views
        self.max_sequence_length = max_sequence_length
        self.seed = seed
        self.length = length

        # 2. Complete scenes with at least one valid group.
        self.scenes: list[IndexedScene] = []
        self.combinations: list[list[tuple[int, ...]]] = []  # per scene: valid camera sets (view indices)
        incomplete, without_group = [], []
        for scene in index:
            files = [text_file(self.cache_dir, scene.name)]
            files += [latents_file(self.cache_dir, scene.name, camera) for camera in scene.cameras]
            if not all(path.is_file() for path in files):
                incomplete.append(scene.name)
                continue
            combinations = view_combinations(scene.rig, num_views, max_az, max_el)
            if not combinations:
                without_group.append(scene.name)
                continue
            self.scenes.append(scene)
            self.combinations.append(combinations)
        if incomplete or without_group:
            summary = self._exclusion_summary(len(index), incomplete, without_group, max_az, max_el)
            warnings.warn(summary, DataWarning, stacklevel=2)
        if not self.scenes:
            raise DatasetError(
                f"no scene of the cache {cache_dir} can give a group of {num_views} views: "
                + self._exclusion_summary(len(index), incomplete, without_group, max_az, max_el)
            )

        # 3. Every ordered group, numbered scene by scene: set j of scene s holds V! orderings.
        orderings_per_set = math.factorial(num_views)
        self._group_ends = np.cumsum([len(c) * orderings_per_set for c in self.combinations])  # (S,)

    def _exclusion_summary(self, total, incomplete, without_group, max_az, max_el) -> str:
        parts = []
        for names, why in (
            (incomplete, "with an incomplete cache"),
            (without_group, f"without {self.num_views} cameras within |d_az| < {max_az:g}, |d_el| < {max_el:g} deg"),
        ):
            if names:
                examples = ", ".join(names[:MAX_EXAMPLES]) + (", ..." if len(names) > MAX_EXAMPLES else "")
                parts.append(f"{len(names)} {why} ({examples})")
        left_out = len(incomplete) + len(without_group)
        return f"{self.cache_dir}: left out {left_out} of {total} scenes: " + ", ".join(parts)

    @classmethod
    def from_cache(cls, cache_dir: str | Path, num_views: int, **kwargs) -> LatentViewDataset:
        """The dataset of a cache, with the scene index saved next to it by ``cache_dataset``."""
        return cls(SceneIndex.load(Path(cache_dir) / CACHE_INDEX_FILE), cache_dir, num_views, **kwargs)

    @property
    def num_groups(self) -> int:
        """Valid ordered groups over all scenes."""
        return int(self._group_ends[-1])

    def __len__(self) -> int:
        return self.num_groups if self.length is None else self.length

    def group(self, i: int) -> tuple[IndexedScene, tuple[str, ...]]:
        """Item i's scene and ordered camera names (view 0 first)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} is out of range for a dataset of {len(self)} items")
        i = i % len(self)
        if self.length is None:
            s = int(np.searchsorted(self._group_ends, i, side="right"))
            k = i - (int(self._group_ends[s - 1]) if s else 0)
            combination, ordering = divmod(k, math.factorial(self.num_views))
        else:
            rng = np.random.default_rng((self.seed, i))
            s = int(rng.integers(len(self.scenes)))
            combination = int(rng.integers(len(self.combinations[s])))
            ordering = int(rng.integers(math.factorial(self.num_views)))
        scene = self.scenes[s]
        views = _nth_permutation(self.combinations[s][combination], ordering)
        return scene, tuple(scene.cameras[v] for v in views)

    def __getitem__(self, i: int) -> dict:
        scene, views = self.group(i)
        try:
            latents = [read_latents(self.cache_dir, scene.name, view) for view in views]  # V x (C, F, h, w)
            prompt_embeds = read_prompt_embeds(self.cache_dir, scene.name)  # (L_valid, D)
        except (OSError, SafetensorError, KeyError) as e:
            raise DatasetError(f"cannot read the cache of scene {scene.name} in {self.cache_dir}: {e}") from None
        rig = scene.rig.select(list(views))
        if not rig.is_static:  # a per-frame rig has a pose for every video frame; the cache holds the first ones
            rig = CameraRig(rig.c2w[:, : self.num_frames], rig.names)
        camera = rig.embedding(self.num_frames, temporal_stride=self.temporal_stride)  # (V, F_latent, 12)
        return {
            "latents": torch.stack(latents).float(),  # (V, C, F_latent, h, w)
            "prompt_embeds": pad_prompt_embeds(prompt_embeds.float(), self.max_sequence_length),  # (L, D)
            "camera": camera,
            "scene": scene.name,
            "views": list(views),
        }


def collate_views(items: Sequence[dict]) -> dict:
    """Stack dataset items into a batch: latents (B, V, C, F, h, w), prompt_embeds (B, L, D), camera (B, V, F, 12);
    scene: B names; views: B lists of V camera names."""
    return {
        "latents": torch.stack([item["latents"] for item in items]),
        "prompt_embeds": torch.stack([item["prompt_embeds"] for item in items]),
        "camera": torch.stack([item["camera"] for item in items]),
        "scene": [item["scene"] for item in items],
        "views": [list(item["views"]) for item in items],
    }
