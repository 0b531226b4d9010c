"""The Lightning path of :func:`syncammaster.data.cache.cache_dataset`: the same work on every available device.

``Trainer.predict`` replaces the DataLoader's sampler with a distributed one (no repeated items in prediction), so each
rank encodes its own share of the items; the encoding and writing are the plain path's ``CacheWriter``.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from .cache import CacheItemDataset, CacheWriter

__all__ = ["LatentCacheModule", "cache_with_lightning"]


class LatentCacheModule(pl.LightningModule):
    """Holds the encoders (so Lightning places them on the device); ``predict_step`` encodes and writes one batch."""

    def __init__(self, writer: CacheWriter) -> None:
        super().__init__()
        self.vae = writer.vae
        self.text_encoder = writer.text_encoder
        self.writer = writer

    def predict_step(self, batch: list[dict], batch_idx: int) -> None:
        self.writer.write_batch(batch)


def cache_with_lightning(
    writer: CacheWriter,
    dataset: CacheItemDataset,
    batch_size: int,
    num_workers: int,
    devices: int | str = "auto",
    progress: bool = True,
) -> bool:
    """Encode ``dataset``'s items on ``devices``; returns whether this process is the main (global rank 0) one."""
    trainer = pl.Trainer(
        accelerator="auto",
        devices=devices,
        strategy="auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    trainer.predict(LatentCacheModule(writer), dataloaders=loader, return_predictions=False)
    return trainer.is_global_zero
