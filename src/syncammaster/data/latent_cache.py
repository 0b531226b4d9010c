"""Cache a dataset's latents: index it, list the work, run the VAE and the text encoder over it, write the entries.

The files and what they hold are ``syncammaster.data.latent_cache_files``'s (the latent cache's format), the items
and their encoding ``syncammaster.data.latent_cache_writer``'s; this module is the driver of ``syncammaster cache``
and of the stages that fill a latent cache before training.

Caching is resumable: an item whose file exists is not encoded again (a caption file is redone if the caption
changed). ``use_lightning=True`` runs the same work through a Lightning ``Trainer.predict``, which shards the items
over every available GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..ranks import on_global_zero
from .index import DatasetError, SceneIndex
from .latent_cache_files import (
    CACHE_CONFIG_FILE,
    CACHE_INDEX_FILE,
    DEFAULT_MAX_SEQUENCE_LENGTH,
    STORAGE_DTYPES,
    CacheSettings,
    cache_config,
    check_or_write_config,
    latents_file,
    model_fingerprint,
    read_cache_config,
    text_file,
    tokenizer_fingerprint,
)
from .latent_cache_writer import CacheItemDataset, CacheWriter, is_done, load_clip, work_items

# The format's names that callers of caching use come along (syncammaster.data re-exports them from here).
__all__ = [
    "CACHE_CONFIG_FILE",
    "CACHE_INDEX_FILE",
    "CacheReport",
    "CacheSettings",
    "cache_dataset",
    "latents_file",
    "load_clip",
    "model_fingerprint",
    "read_cache_config",
    "text_file",
    "tokenizer_fingerprint",
]


# ----------------------------------------------------------------------------------------------------------------
# cache_dataset
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheReport:
    num_items: int  # captions + videos of the index
    num_written: int  # encoded by this run (all its processes), each item once
    num_skipped: int  # already in the cache when it started

    def __str__(self) -> str:
        return f"encoded {self.num_written} of {self.num_items} items ({self.num_skipped} were already cached)"


def _check_settings(vae, settings: CacheSettings, batch_size: int) -> None:
    stride, multiple = vae.config.scale_factor_temporal, vae.config.scale_factor_spatial
    if settings.num_frames < 1 or (settings.num_frames - 1) % stride:
        raise DatasetError(f"num_frames must be of the form {stride}k+1, got {settings.num_frames}")
    for name, value in (("height", settings.height), ("width", settings.width)):
        if value < multiple or value % multiple:
            raise DatasetError(f"{name} must be a positive multiple of {multiple} (the VAE's stride), got {value}")
    if settings.max_sequence_length < 1:
        raise DatasetError(f"max_sequence_length must be >= 1, got {settings.max_sequence_length}")
    if settings.storage_dtype not in STORAGE_DTYPES:
        raise DatasetError(f"storage_dtype must be one of {', '.join(STORAGE_DTYPES)}, got {settings.storage_dtype!r}")
    if batch_size < 1:
        raise DatasetError(f"batch_size must be >= 1, got {batch_size}")


def cache_dataset(
    index: SceneIndex,
    vae,
    tokenizer,
    text_encoder,
    cache_dir: str | Path,
    num_frames: int,
    height: int,
    width: int,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    *,
    storage_dtype: str = "float32",
    num_workers: int = 0,
    use_lightning: bool = False,
    devices: int | str = "auto",
    progress: bool = True,
) -> CacheReport:
    """Encode every video and caption of ``index`` into the latent cache ``cache_dir`` (layout:
    ``syncammaster.data.latent_cache_files``); resumable.

    Args:
        index: the scenes (``SceneIndex.build``); every video must have at least ``num_frames`` frames.
        vae: ``AutoencoderKLWan``. tokenizer, text_encoder: Wan's UMT5 tokenizer and ``UMT5EncoderModel``.
        cache_dir: the cache folder (created). A cache made with other settings or models is refused.
        num_frames: frames per video, 4k + 1 (the first ones). height, width: pixels after resize and crop.
        max_sequence_length: caption tokens (padding included), as the model will use them.
        batch_size: videos (and captions) encoded together.
        device: where to encode on the plain path (default: cuda if available, else cpu); the models are moved
            there. The Lightning path places them itself.
        storage_dtype: "float32" or "bfloat16" (halves the cache; the release's data was bf16).
        num_workers: DataLoader processes decoding videos.
        use_lightning: run through ``lightning.Trainer(accelerator="auto", devices=devices, strategy="auto")
            .predict``: one process per device, each encoding its own share of the items (each item once).
        progress: show a progress bar.

    Returns:
        what was encoded and what was already there (the same in every process of a multi-process run).
    """
    # 1. Check inputs, and that every video is long enough, before anything is written.
    settings = CacheSettings(num_frames, height, width, max_sequence_length, storage_dtype)
    _check_settings(vae, settings, batch_size)
    short = [scene for scene in index if scene.num_frames is not None and scene.num_frames < num_frames]
    if short:
        raise DatasetError(
            f"{len(short)} scenes have videos shorter than the {num_frames} frames to cache (e.g. {short[0].name}: "
            f"{short[0].num_frames} frames); cache fewer frames"
        )

    # 2. The cache's config: a cache made differently is refused, a new one records what makes it.
    cache_dir = Path(cache_dir)
    check_or_write_config(cache_dir, cache_config(settings, vae, tokenizer, text_encoder))

    # 3. What is left to do.
    items = work_items(index, cache_dir)
    pending = [item for item in items if not is_done(item)]
    writer = CacheWriter(vae, tokenizer, text_encoder, settings)
    dataset = CacheItemDataset(pending, settings)

    # 4. Encode and write.
    num_written = 0
    if pending and use_lightning:
        from .latent_cache_lightning import cache_with_lightning

        num_written = cache_with_lightning(writer, dataset, batch_size, num_workers, devices, progress)
    elif pending:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        vae.to(device)
        text_encoder.to(device)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
        with tqdm(total=len(pending), desc="caching", unit="item", disable=not progress) as bar:
            for batch in loader:
                num_written += writer.write_batch(batch)
                bar.update(len(batch))

    # 5. Record the index next to the cache, so training can read it without scanning the dataset again. In a
    #    multi-process run rank 0 writes it once every process has written its share; all wait until it is there.
    on_global_zero(lambda: index.save(cache_dir / CACHE_INDEX_FILE))
    return CacheReport(len(items), num_written, len(items) - len(pending))
