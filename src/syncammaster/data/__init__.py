"""Datasets in the SynCamVideo layout: index and checks, view groups, latent caching, training datasets.

- :class:`SceneIndex` scans a dataset root once; bad files are skipped with one counted warning (or fail with
  ``strict=True``).
- :func:`view_groups` / :func:`write_sample_list`: which cameras of a scene are trained together.
- :func:`cache_dataset` encodes every video (VAE) and caption (UMT5) once into a latent cache folder.
- :class:`LatentViewDataset` serves groups of V cached views with their caption and camera embedding.
"""

from ..encoding import encode_captions, encode_videos, pad_prompt_embeds, resize_and_crop
from .dataset import LatentViewDataset, collate_views
from .index import DatasetError, DataWarning, IndexedScene, IndexProblem, SceneIndex
from .latent_cache import (
    CacheReport,
    CacheSettings,
    cache_dataset,
    latents_file,
    load_clip,
    read_cache_config,
    text_file,
)
from .views import (
    camera_angles,
    view_combinations,
    view_groups,
    write_sample_list,
)

__all__ = [
    "CacheReport",
    "CacheSettings",
    "DataWarning",
    "DatasetError",
    "IndexProblem",
    "IndexedScene",
    "LatentViewDataset",
    "SceneIndex",
    "cache_dataset",
    "camera_angles",
    "collate_views",
    "encode_captions",
    "encode_videos",
    "latents_file",
    "load_clip",
    "pad_prompt_embeds",
    "read_cache_config",
    "resize_and_crop",
    "text_file",
    "view_combinations",
    "view_groups",
    "write_sample_list",
]
