"""The Lightning path of :func:`syncammaster.data.latent_cache.cache_dataset`: the same work on every available device.

``Trainer.predict`` replaces the DataLoader's sampler with a distributed one that repeats no item (unlike training's,
it does not pad the shares to one length), so each rank encodes its own share of the items, each item once; the
encoding and writing are the plain path's ``CacheWriter``. On N devices this is N processes (Lightning's launcher
runs the same command again for ranks 1 to N-1), which all return once every share is written.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from .latent_cache_writer import CacheItemDataset, CacheWriter

__all__ = ["LatentCacheModule", "cache_with_lightning"]


class LatentCacheModule(pl.LightningModule):
    """Holds the encoders (so Lightning places them on the device); ``predict_step`` encodes and writes one batch.

    ``num_written`` counts the files this process wrote."""

    def __init__(self, writer: CacheWriter) -> None:
        super().__init__()
        self.vae = writer.vae
        self.text_encoder = writer.text_encoder
        self.writer = writer
        self.num_written = 0

    def predict_step(self, batch: list[dict], batch_idx: int) -> None:
        self.num_written += self.writer.write_batch(batch)


def cache_with_lightning(
    writer: CacheWriter,
    dataset: CacheItemDataset,
    batch_size: int,
    num_workers: int,
    devices: int | str = "auto",
    progress: bool = True,
) -> int:
    """Encode ``dataset``'s items on ``devices``; every process returns once all shares are written.

    Returns the number of files written by all processes together (an item another process wrote meanwhile is left
    alone, so it can be fewer than the items)."""
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
    module = LatentCacheModule(writer)
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    # The sum over the processes is also the barrier: the shares are uneven, the first done waits for the last.
    written = torch.tensor(module.num_written, device=trainer.strategy.root_device)
    return int(trainer.strategy.reduce(written, reduce_op="sum"))
