"""``syncammaster train --config FILE``: runs one stage (text, vae, base, sync) with checkpoints and full resume.

Each stage writes into its ``output_dir``: ``checkpoints/`` (every ``checkpoint_every`` steps and ``last.ckpt``),
``metrics.csv`` (step, loss, learning rate), and finally the exported diffusers folder. Re-running the same command
resumes from ``last.ckpt`` (model, optimizer, scheduler and step; the data order and the noise depend only on the
step, so a resumed run continues exactly as an uninterrupted one would).
"""

from __future__ import annotations

import csv
import io
import shutil
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..atomic import write_atomically
from ..video import read_video
from .config import TrainConfig

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.csv"


# ---------------------------------------------------------------------- data order


class StepSampler(Sampler[int]):
    """Item indices in the order of optimisation steps, starting at the module's current step.

    Global batch ``g`` is items ``[g * world * B, (g + 1) * world * B)``; rank ``r`` takes its slice of ``B``. The
    dataset's item ``i`` is a pure function of ``i``, so the data seen at step ``g`` never depends on whether the run
    was interrupted.
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
            first = (step * world + rank) * self.batch_size
            yield from range(first, first + self.batch_size)

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
    """Appends (step, loss, learning rate, seconds) to ``metrics.csv``.

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
        if trainer.global_rank != 0:
            return
        loss = outputs["loss"].item() if isinstance(outputs, dict) else float(outputs)
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "loss", "lr", "seconds"])
            writer.writerow([step, f"{loss:.6f}", f"{lr:.3e}", f"{time.monotonic() - self._start:.1f}"])


class StepProgressBar(pl.Callback):
    """A tqdm bar over optimisation steps: from the restored step to ``max_steps``, with the loss.

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

    on_exception = on_train_end  # an interrupted run leaves a closed bar, not a half-drawn line


# ---------------------------------------------------------------------- trainer


def _precision(config: TrainConfig) -> str:
    if config.precision != "auto":
        return config.precision
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


def _strategy(config: TrainConfig) -> str:
    if config.strategy.startswith("deepspeed"):
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ValueError(f"strategy {config.strategy!r} needs DeepSpeed: pip install deepspeed") from None
        return "deepspeed_stage_1" if config.strategy == "deepspeed" else config.strategy
    return config.strategy


def make_trainer(config: TrainConfig, progress_bar: bool = True) -> pl.Trainer:
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
    return pl.Trainer(
        accelerator="auto",
        devices=config.devices,
        strategy=_strategy(config),
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
    """Trains ``module`` on ``dataset`` up to ``config.max_steps``, resuming from ``last.ckpt`` unless ``restart``."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    last = config.run_dir / CHECKPOINT_DIR / "last.ckpt"
    if restart and last.exists():
        shutil.rmtree(config.run_dir / CHECKPOINT_DIR)
    trainer = make_trainer(config, progress_bar)
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
