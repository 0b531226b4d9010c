"""The work of filling a latent cache: the items (one per caption, one per video), the dataset that reads their
frames, and the writer that encodes a batch of them and writes its files. The driver
(:mod:`syncammaster.data.latent_cache`) lists the items and runs them through a DataLoader or, on several devices,
through Lightning (:mod:`syncammaster.data.latent_cache_lightning`); both use this writer.

Frames: the first ``num_frames`` frames of each video, scaled until (height, width) fits inside and centre-cropped
to it, the release's rule (1280x1280 -> 832x832 -> 480x832); values in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..encoding import encode_captions, encode_videos, resize_and_crop
from ..video import VideoTooShortError, read_clip
from .index import DatasetError, SceneIndex
from .latent_cache_files import (
    STORAGE_DTYPES,
    CacheSettings,
    cached_caption,
    latents_file,
    text_file,
    write_latents,
    write_prompt_embeds,
)

__all__ = ["CacheItemDataset", "CacheWriter", "is_done", "load_clip", "work_items"]


# ----------------------------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------------------------


def load_clip(path: str | Path, num_frames: int, height: int, width: int) -> torch.Tensor:
    """The first ``num_frames`` frames of a video, resized and cropped (:func:`resize_and_crop`).

    Returns:
        (3, num_frames, height, width) float32 in [-1, 1], the layout the VAE takes.
    """
    try:
        frames = read_clip(path, num_frames).frames  # (T, h, w, 3) uint8; only these frames are decoded
    except VideoTooShortError as e:
        raise DatasetError(
            f"video {path} has {e.available} frames, fewer than the {num_frames} to cache; cache fewer frames"
        ) from None
    return resize_and_crop(frames, height, width).permute(1, 0, 2, 3)  # (3, T, H, W)


# ----------------------------------------------------------------------------------------------------------------
# Work items
# ----------------------------------------------------------------------------------------------------------------


def is_done(item: dict) -> bool:
    target = Path(item["target"])
    if item["kind"] == "text":
        return cached_caption(target) == item["caption"]
    return target.is_file()


def work_items(index: SceneIndex, cache_dir: Path) -> list[dict]:
    """One item per caption, then one per video, in index order: {"kind", "scene", "camera", "source", "caption",
    "target"} (plain strings, so that DataLoader workers and Lightning's batch transfer pass them through). Captions
    come first so that batches hold one kind of item (except one at the boundary)."""
    items = [
        {
            "kind": "text",
            "scene": scene.name,
            "camera": "",
            "source": "",
            "caption": scene.caption,
            "target": str(text_file(cache_dir, scene.name)),
        }
        for scene in index
    ]
    for scene in index:
        for camera in scene.cameras:
            items.append(
                {
                    "kind": "video",
                    "scene": scene.name,
                    "camera": camera,
                    "source": str(index.video_path(scene, camera)),
                    "caption": "",
                    "target": str(latents_file(cache_dir, scene.name, camera)),
                }
            )
    return items


class CacheItemDataset(torch.utils.data.Dataset):
    """Items to encode; a video item comes with its frames, (3, T, H, W) in [-1, 1], under "video".

    An item found done when it is loaded (written meanwhile by another process) comes back with "done": True.
    """

    def __init__(self, items: Sequence[dict], settings: CacheSettings) -> None:
        self.items = list(items)
        self.settings = settings

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.items[i])
        item["done"] = is_done(item)
        if item["kind"] == "video" and not item["done"]:
            s = self.settings
            item["video"] = load_clip(item["source"], s.num_frames, s.height, s.width)  # (3, T, H, W)
        return item


class CacheWriter:
    """Encodes a batch of items and writes their files; shared by the plain and the Lightning paths."""

    def __init__(self, vae, tokenizer, text_encoder, settings: CacheSettings) -> None:
        self.vae = vae
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.settings = settings

    def write_batch(self, batch: Sequence[dict]) -> int:
        """Encode and write every item not done; returns how many files were written."""
        storage_dtype = STORAGE_DTYPES[self.settings.storage_dtype]
        videos = [item for item in batch if item["kind"] == "video" and not item["done"]]
        texts = [item for item in batch if item["kind"] == "text" and not item["done"]]
        if videos:
            latents = encode_videos(self.vae, torch.stack([item["video"] for item in videos]))  # (B, C, F, h, w)
            for item, latent in zip(videos, latents, strict=True):
                write_latents(Path(item["target"]), latent.to(storage_dtype), item["scene"], item["camera"])
        if texts:
            captions = [item["caption"] for item in texts]
            embeds = encode_captions(self.tokenizer, self.text_encoder, captions, self.settings.max_sequence_length)
            for item, embed in zip(texts, embeds, strict=True):  # (L_valid, D) each
                write_prompt_embeds(Path(item["target"]), embed.to(storage_dtype), item["scene"], item["caption"])
        return len(videos) + len(texts)
