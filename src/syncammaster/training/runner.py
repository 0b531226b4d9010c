"""``syncammaster train --config FILE``: runs one stage (text, vae, base, sync) with checkpoints and full resume.

Each stage writes into its ``output_dir``: ``checkpoints/`` (every ``checkpoint_every`` steps and ``last.ckpt``, as
Lightning writes them under the strategy: a file for DDP and FSDP, a folder of shards for DeepSpeed),
``metrics.csv`` (step, loss averaged over the processes, learning rate), and finally the exported diffusers folder.
Re-running the same command resumes from ``last.ckpt`` (model, optimizer, scheduler and step; the data order and the
noise depend only on the step, so a resumed run continues exactly as an uninterrupted one would).

On N devices the run is N processes; global batch ``g`` is items ``g * N * B`` to ``(g + 1) * N * B - 1`` of the
dataset (``batch_items``), whichever process holds them, so N processes of batch B see the batches one process of
batch N * B sees. Only global rank 0 writes the metrics, the export and the final message.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..atomic import write_atomically
from ..ranks import global_rank
from ..video import read_video
from .config import TrainConfig

if TYPE_CHECKING:
    from lightning.pytorch.strategies import Strategy

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.csv"


# ---------------------------------------------------------------------- data order


def batch_items(step: int, world_size: int, rank: int, batch_size: int) -> range:
    """The dataset items of process ``rank``'s batch at optimisation step ``step``.

    Global batch ``step`` is items ``[step * world_size * B, (step + 1) * world_size * B)``, and rank ``r`` takes its
    ``r``-th slice of ``B``: the same items as one process with batch ``world_size * B``, in the same order.
    """
    first = (step * world_size + rank) * batch_size
    return range(first, first + batch_size)


class StepSampler(Sampler[int]):
    """Item indices in the order of optimisation steps (``batch_items``), starting at the module's current step.

    The dataset's item ``i`` is a pure function of ``i``, so the data seen at step ``g`` never depends on whether the
    run was interrupted, nor on how many processes share it.
    """

    def __init__(self, module: pl.LightningModule, batch_size: int, max_steps: int):
        self.module = module
        self.batch_size = batch_size
        self.max_steps = max_steps

    def _world(self) -> tuple[int, int]:
        trainer = self.module._trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def __iter__(self):
        world, rank = self._world()
        start = self.module.global_step if self.module._trainer is not None else 0
        for step in range(start, self.max_steps):
            yield from batch_items(step, world, rank, self.batch_size)

    def __len__(self) -> int:
        return self.max_steps * self.batch_size


class VideoClipDataset(Dataset):
    """Random clips (``clip_frames`` frames, ``crop`` x ``crop`` pixels) of a list of videos, for the VAE stage.

    Item ``i`` is a pure function of (seed, i). Returns {"video": (3, T, crop, crop) float in [-1, 1]}.
    """

    def __init__(self, videos: list[Path], clip_frames: int, crop: int, length: int, seed: int = 0):
        if not videos:
            raise ValueError("no videos to train on; check data_root")
        self.videos, self.clip_frames, self.crop, self.length, self.seed = videos, clip_frames, crop, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        frames = read_video(self.videos[rng.integers(len(self.videos))])  # (T, H, W, 3) uint8
        total, height, width = frames.shape[:3]
        if total < self.clip_frames or height < self.crop or width < self.crop:
            raise ValueError(f"videos must have >= {self.clip_frames} frames of >= {self.crop}px, got {frames.shape}")
        t0 = rng.integers(total - self.clip_frames + 1)
        y0, x0 = rng.integers(height - self.crop + 1), rng.integers(width - self.crop + 1)
        clip = frames[t0 : t0 + self.clip_frames, y0 : y0 + self.crop, x0 : x0 + self.crop]  # (T, c, c, 3)
        if rng.random() < 0.5:
            clip = clip[:, :, ::-1]  # horizontal flip
        video = torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        return {"video": video}


# ---------------------------------------------------------------------- logging


class MetricsCSV(pl.Callback):
    """Appends (step, loss, learning rate, seconds) to ``metrics.csv``; the loss is the mean over the processes.

    On resume, rows logged after the restored checkpoint (steps an interrupted run did again) are dropped, so each
    step appears once, and ``seconds`` goes on from the last kept row: it is the training time up to that step.
    """

    def __init__(self, path: Path, every: int):
        self.path, self.every = path, max(1, every)
        self._start = time.monotonic()

    def on_train_start(self, trainer, module):
        if trainer.global_rank != 0 or not self.path.exists():
            return
        with self.path.open(newline="") as handle:
            header, *rows = list(csv.reader(handle)) or [[]]
        # Rows after the restored step, and a row cut short by a kill in mid-write, are dropped.
        kept = [row for row in rows if len(row) == len(header) and int(row[0]) <= trainer.global_step]
        if len(kept) < len(rows):
            text = io.StringIO()
            csv.writer(text).writerows([header, *kept])
            write_atomically(self.path, text.getvalue())
        if kept:
            self._start = time.monotonic() - float(kept[-1][3])

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index):
        step = trainer.global_step
        if step % self.every and step != trainer.max_steps:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        # The loss of the global batch: every process takes part in the mean, rank 0 writes it.
        loss = trainer.strategy.reduce(loss.detach(), reduce_op="mean").item()
        if trainer.global_rank != 0:
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "loss", "lr", "seconds"])
            writer.writerow([step, f"{loss:.6f}", f"{lr:.3e}", f"{time.monotonic() - self._start:.1f}"])


class StepProgressBar(pl.Callback):
    """A tqdm bar over optimisation steps: from the restored step to ``max_steps``, with rank 0's loss.

    Lightning's own bar counts batches of an epoch, which a run that resumes mid-way (the data order here is one long
    epoch) shows with a wrong total.
    """

    def __init__(self, description: str):
        self.description = description
        self.bar = None

    def on_train_start(self, trainer, module):
        if trainer.global_rank == 0:
            self.bar = tqdm(total=trainer.max_steps, initial=trainer.global_step, desc=self.description, unit="step",
                            dynamic_ncols=True)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index):
        if self.bar is None:
            return
        self.bar.update(trainer.global_step - self.bar.n)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)

    def on_train_end(self, trainer, module):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, module, exception):
        self.on_train_end(trainer, module)  # an interrupted run leaves a closed bar, not a half-drawn line


# ---------------------------------------------------------------------- trainer


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint files, each written to a temporary file beside it and renamed: a process killed while
    saving leaves the previous ``last.ckpt`` whole. (Lightning's own writer builds the file in the system's temporary
    folder and moves it, which is a copy, not a rename, where that folder is on another file system.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported when saving a training checkpoint")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomically(path, buffer.getvalue())


def _remove_unfinished_checkpoints(folder: Path) -> None:
    """Temporary files of checkpoints whose writer was killed (``write_atomically`` names them ``.NAME.*.tmp``)."""
    for leftover in folder.glob(".*.ckpt.*.tmp"):
        leftover.unlink(missing_ok=True)


def _precision(config: TrainConfig) -> str:
    if config.precision != "auto":
        return config.precision
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


# Strategies Lightning runs on CUDA devices only: it refuses FSDP on a CPU, and DeepSpeed here is a GPU library.
GPU_STRATEGY_PREFIXES = ("fsdp", "deepspeed")


def check_strategy(config: TrainConfig) -> None:
    """Refuses, in one line, a strategy this machine cannot run (before any data is read or model loaded)."""
    if not config.strategy.startswith(GPU_STRATEGY_PREFIXES):
        return
    if not torch.cuda.is_available():
        raise ValueError(f"strategy {config.strategy!r} needs CUDA GPUs and this machine has none; set "
                         'strategy = "ddp" (one process per device; devices = N for N CPU processes) or "auto"')
    if config.strategy.startswith("deepspeed"):
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ValueError(f"strategy {config.strategy!r} needs DeepSpeed: pip install deepspeed") from None


def _strategy(config: TrainConfig, module: torch.nn.Module | None = None) -> str | Strategy:
    """Lightning's strategy for ``config.strategy``; FSDP shards ``module`` block by block where its model names its
    blocks (diffusers' ``_no_split_modules``), so a forward gathers one block's weights at a time, not all of them."""
    if config.strategy == "deepspeed":
        return "deepspeed_stage_1"  # the release's
    if config.strategy == "fsdp" and module is not None:
        from lightning.pytorch.strategies import FSDPStrategy

        blocks = _block_classes(module)
        return FSDPStrategy(auto_wrap_policy=blocks) if blocks else "fsdp"
    return config.strategy


def _block_classes(module: torch.nn.Module) -> set[type[torch.nn.Module]]:
    names = {name for part in module.modules() for name in getattr(part, "_no_split_modules", None) or ()}
    return {type(part) for part in module.modules() if type(part).__name__ in names}


def make_trainer(config: TrainConfig, progress_bar: bool = True, module: torch.nn.Module | None = None) -> pl.Trainer:
    """The Trainer of a stage; ``module`` (the model it will train) lets FSDP wrap its blocks."""
    run = config.run_dir
    checkpoints = pl.callbacks.ModelCheckpoint(
        dirpath=run / CHECKPOINT_DIR,
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        every_n_train_steps=config.checkpoint_every,
        save_last=True,
        save_top_k=1,  # newest periodic checkpoint + last.ckpt; older ones are replaced
        monitor="step",
        mode="max",
    )
    callbacks = [checkpoints, MetricsCSV(run / METRICS_FILE, config.log_every)]
    if progress_bar:
        callbacks.append(StepProgressBar(f"train {config.stage}"))
    strategy = _strategy(config, module)
    # DeepSpeed writes its checkpoint folders itself; the other strategies write files through a CheckpointIO.
    plugins = [] if config.strategy.startswith("deepspeed") else [AtomicCheckpointIO()]
    return pl.Trainer(
        accelerator="auto",
        devices=config.devices,
        strategy=strategy,
        plugins=plugins,
        precision=_precision(config),
        max_steps=config.max_steps,
        max_epochs=-1,
        gradient_clip_val=config.gradient_clip,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,  # StepProgressBar instead
        enable_model_summary=False,
        use_distributed_sampler=False,  # StepSampler shards by rank itself
        default_root_dir=run,
        log_every_n_steps=config.log_every,
    )


def fit(config: TrainConfig, module: pl.LightningModule, dataset: Dataset, restart: bool = False,
        progress_bar: bool = True) -> pl.Trainer:
    """Trains ``module`` on ``dataset`` up to ``config.max_steps``, resuming from ``last.ckpt`` unless ``restart``.

    In a multi-process run every process calls this; only global rank 0 removes old checkpoints on ``restart``.
    """
    check_strategy(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    last = config.run_dir / CHECKPOINT_DIR / "last.ckpt"
    if global_rank() == 0:
        if restart and last.exists():
            shutil.rmtree(config.run_dir / CHECKPOINT_DIR)
        _remove_unfinished_checkpoints(config.run_dir / CHECKPOINT_DIR)
    trainer = make_trainer(config, progress_bar, module)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=StepSampler(module, config.batch_size, config.max_steps),
        num_workers=config.num_workers,
        persistent_workers=False,
    )
    pl.seed_everything(config.seed, workers=True, verbose=False)
    # StepSampler restarts the data at the restored step, which Lightning cannot see; its warning does not apply.
    warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    trainer.fit(module, loader, ckpt_path=last if last.exists() and not restart else None, weights_only=True)
    return trainer
