"""LightningModules: the model, the loss and the optimizer, nothing else.

``FlowMatchingModule`` trains a transformer by flow matching as SynCamMaster does (docs/architecture.md, section
1.3): x_sigma = (1 - sigma) x0 + sigma noise, target = noise - x0, sigmas from Wan's shifted schedule, the release's
bell-shaped timestep weighting. ``VAEModule`` trains a small ``AutoencoderKLWan`` by reconstruction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from ..lora import has_adapter
from ..models import SynCamMasterTransformer3DModel
from .runner import batch_items

NUM_TRAIN_TIMESTEPS = 1000


def step_generator(module: pl.LightningModule, seed: int, batch_index: int) -> torch.Generator:
    """One generator for a whole training step (the VAE stage's): its draws depend only on (seed, step, rank), so a
    resumed run draws what the original would (but N processes draw otherwise than one; see ``group_generators``).

    Lightning's checkpoints do not hold torch's global RNG, so every draw of a step comes from this generator."""
    attached = module._trainer is not None
    rank = module.trainer.global_rank if attached else 0
    step = module.global_step if attached else batch_index
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1009 + rank)


def group_generators(module: pl.LightningModule, seed: int, batch_index: int, batch_size: int
                     ) -> list[torch.Generator]:
    """One generator per group of a training batch, seeded by the group's dataset item (``batch_items``).

    A group's random draws depend only on (seed, item): a resumed run draws what the original would, and N processes
    of batch B draw, group for group, what one process of batch N * B draws."""
    attached = module._trainer is not None
    step = module.global_step if attached else batch_index
    world, rank = (module.trainer.world_size, module.trainer.global_rank) if attached else (1, 0)
    return [torch.Generator().manual_seed(seed * 1_000_003 + item)
            for item in batch_items(step, world, rank, batch_size)]


def _per_group(generators: list[torch.Generator], draw) -> torch.Tensor:
    """``draw(generator)`` for each group's generator, stacked: (B, ...)."""
    return torch.stack([draw(generator) for generator in generators])


class FlowSchedule:
    """The release's training grid: 1000 shifted sigmas from 1 down to 0 (exclusive) and their loss weights."""

    def __init__(self, shift: float = 5.0, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS):
        sigmas = torch.linspace(1.0, 0.0, num_train_timesteps + 1, dtype=torch.float64)[:-1]
        self.sigmas = (shift * sigmas / (1 + (shift - 1) * sigmas)).float()  # (1000,)
        self.timesteps = self.sigmas * num_train_timesteps  # (1000,) in (0, 1000]
        # Bell-shaped weight centred on the middle timestep, shifted to start at zero and normalised to mean one.
        bell = torch.exp(-2 * ((self.timesteps - num_train_timesteps / 2) / num_train_timesteps) ** 2)
        bell = bell - bell.min()
        self.weights = bell * (num_train_timesteps / bell.sum())  # (1000,)


class FlowMatchingModule(pl.LightningModule):
    """Flow-matching training of a Wan / SynCamMaster transformer.

    A batch holds ``latents`` (B, V, C, F, h, w), ``prompt_embeds`` (B, L, text_dim) and, for the SynCamMaster
    model, ``camera`` (B, V, F, 12). All views of one prompt share one timestep (as the release samples one per
    group). With a ``SynCamMasterTransformer3DModel`` only its MVS parameters are optimised, or, where it carries the
    novel-view LoRA (``syncammaster.lora.add_novel_view_adapter``), only the LoRA; a plain Wan model is trained whole.

    ``reference_view_prob`` (multi-view only) is the paper's novel-view recipe (Sec. 3.5): that share of groups gets
    one view, drawn at random, clean (its latent as is, timestep 0) and left out of the loss, so the module learns to
    generate the other views from a given one. ``same_pose_prob`` of those groups are same-pose copies: every view is
    the given view's latent (each with its own noise) at view 0's camera, the task of carrying the given view into
    the generated ones with no geometry involved.
    """

    def __init__(
        self,
        transformer: torch.nn.Module,
        learning_rate: float = 1e-5,
        weight_decay: float = 0.01,
        schedule: LearningRateSchedule | None = None,
        shift: float = 5.0,
        bf16_timesteps: bool = False,
        seed: int = 0,
        caption_dropout: float = 0.0,
        null_prompt_embeds: torch.Tensor | None = None,
        reference_view_prob: float = 0.0,
        same_pose_prob: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= reference_view_prob <= 1.0:
            raise ValueError(f"reference_view_prob must be in [0, 1], got {reference_view_prob}")
        if not 0.0 <= same_pose_prob <= 1.0:
            raise ValueError(f"same_pose_prob must be in [0, 1], got {same_pose_prob}")
        if same_pose_prob > 0 and reference_view_prob == 0:
            raise ValueError("same_pose_prob needs reference_view_prob > 0 (a copy group is built from its given view)")
        if caption_dropout > 0 and null_prompt_embeds is None:
            raise ValueError("caption_dropout > 0 needs null_prompt_embeds, the embedding of the empty caption")
        self.transformer = transformer
        self.schedule = FlowSchedule(shift)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_schedule = schedule or LearningRateSchedule()
        self.bf16_timesteps = bf16_timesteps
        self.seed = seed
        # Training on the empty caption now and then gives classifier-free guidance the unconditional prediction it
        # subtracts. A plain attribute, not a buffer: checkpoints stay those of the transformer alone.
        self.caption_dropout = caption_dropout
        self.null_prompt_embeds = null_prompt_embeds  # (L, text_dim) or None
        self.is_multiview = isinstance(transformer, SynCamMasterTransformer3DModel)
        if reference_view_prob > 0 and not self.is_multiview:
            raise ValueError("reference_view_prob needs a multi-view (SynCamMaster) transformer, stage 'sync'")
        self.reference_view_prob = reference_view_prob
        self.same_pose_prob = same_pose_prob
        self.has_adapter = has_adapter(transformer)
        if self.is_multiview and not self.has_adapter:  # with the adapter, it alone is trainable already
            transformer.freeze_base()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [parameter for _, parameter in self._named_trainable()]

    def _named_trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        if self.has_adapter:
            return [(name, p) for name, p in self.transformer.named_parameters() if p.requires_grad]
        if self.is_multiview:
            return self.transformer.named_mvs_parameters()
        return list(self.transformer.named_parameters())

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator | list[torch.Generator]
             ) -> torch.Tensor:
        """The batch's loss; each group's noise, timestep, caption dropout and reference view are drawn from its own
        generator in ``generator`` (one per group, ``group_generators``) or all from one."""
        latents = batch["latents"]  # (B, V, C, F, h, w)
        batch_size, num_views = latents.shape[:2]
        generators = generator if isinstance(generator, list) else [generator] * batch_size
        camera = batch.get("camera")  # (B, V, F, 12)
        noise = _per_group(generators, lambda g: torch.randn(latents.shape[1:], generator=g))  # (B, V, C, F, h, w)
        noise = noise.flatten(0, 1).to(latents.device)  # (B*V, C, F, h, w)
        timestep_ids = _per_group(generators, lambda g: torch.randint(0, len(self.schedule.sigmas), (), generator=g))
        sigma = self.schedule.sigmas[timestep_ids].repeat_interleave(num_views).to(latents.device)  # (B*V,)
        timestep = self.schedule.timesteps[timestep_ids].repeat_interleave(num_views).to(latents.device)
        if self.bf16_timesteps:
            timestep = timestep.to(torch.bfloat16).float()

        prompt_embeds = batch["prompt_embeds"]  # (B, L, text_dim)
        if self.caption_dropout > 0:
            # Drawn after the noise and timesteps, so those stay what they are without dropout.
            dropped = _per_group(generators, lambda g: torch.rand((), generator=g)) < self.caption_dropout  # (B,)
            null = self.null_prompt_embeds.to(prompt_embeds.device, prompt_embeds.dtype)
            prompt_embeds = torch.where(dropped.to(prompt_embeds.device).view(-1, 1, 1), null, prompt_embeds)
        context = prompt_embeds.repeat_interleave(num_views, dim=0)  # (B*V, L, text_dim)

        # A reference view is clean, at timestep 0, and does not count in the loss.
        is_reference = None  # (B, V) where groups may have one
        if self.reference_view_prob > 0 and num_views > 1:
            # Drawn last, so that everything above is drawn as it is without reference views.
            has_reference = _per_group(generators, lambda g: torch.rand((), generator=g)) < self.reference_view_prob
            reference = _per_group(generators, lambda g: torch.randint(0, num_views, (), generator=g))  # (B,)
            is_reference = F.one_hot(reference, num_views).bool() & has_reference.view(-1, 1)  # (B, V)
            if self.same_pose_prob > 0:
                copies = has_reference & (_per_group(generators, lambda g: torch.rand((), generator=g))
                                          < self.same_pose_prob)  # (B,)
                latents, camera = same_pose_copies(latents, camera, reference, copies)
        x0 = latents.flatten(0, 1).float()  # (B*V, C, F, h, w), view-major
        noisy = (1 - sigma.view(-1, 1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1, 1) * noise
        target = noise - x0
        counted = torch.ones(batch_size, num_views)  # (B, V): the views that count in the loss
        if is_reference is not None:
            counted = (~is_reference).float()
            clean = is_reference.flatten().to(x0.device)  # (B*V,)
            noisy = torch.where(clean.view(-1, 1, 1, 1, 1), x0, noisy)
            timestep = torch.where(clean, torch.zeros_like(timestep), timestep)
        dtype = next(self.transformer.parameters()).dtype
        kwargs = {}
        if self.is_multiview:
            kwargs = {"camera_embedding": camera.flatten(0, 1), "num_views": num_views}  # (B*V, F, 12)
        prediction = self.transformer(noisy.to(dtype), timestep, context.to(dtype), return_dict=False, **kwargs)[0]
        per_view = F.mse_loss(prediction.float(), target, reduction="none").flatten(1).mean(1)  # (B*V,)
        counted = counted.to(x0.device)
        per_group = (per_view.view(batch_size, num_views) * counted).sum(1) / counted.sum(1)  # (B,)
        weights = self.schedule.weights[timestep_ids].to(x0.device)  # (B,)
        return (per_group * weights).mean()

    def training_step(self, batch, batch_index):
        loss = self.loss(batch, group_generators(self, self.seed, batch_index, batch["latents"].shape[0]))
        self.log("train_loss", loss, prog_bar=True, on_step=True, batch_size=batch["latents"].shape[0])
        return loss

    def configure_optimizers(self):
        return adamw_with_schedule(self.trainable_parameters(), self.learning_rate, self.weight_decay, self.lr_schedule)

    def on_save_checkpoint(self, checkpoint):
        # Only the trained parameters need saving for a frozen-base stage; the base is reloaded from its folder.
        if self.is_multiview:
            trainable = {f"transformer.{name}" for name, _ in self._named_trainable()}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def on_load_checkpoint(self, checkpoint):
        # Under DeepSpeed the engine restores every weight from its own checkpoint folder: no state_dict here.
        if self.is_multiview and "state_dict" in checkpoint:
            trainable = {f"transformer.{name}" for name, _ in self._named_trainable()}
            saved = checkpoint["state_dict"].keys()
            # A module-only run's checkpoint resumed with lora_rank, or the other way round (an empty state, as a
            # strategy that restores the weights itself may hand over, is filled in whole).
            if saved and not trainable <= saved:
                what = "a LoRA adapter" if self.has_adapter else "the multi-view module"
                raise ValueError(f"the checkpoint to resume holds other trained parameters than this run's ({what}, "
                                 f"{len(trainable)} tensors; it has {len(saved)}); use a new output_dir, or train "
                                 "with the settings it was made with")
            missing = self.state_dict().keys() - saved
            checkpoint["state_dict"].update({k: self.state_dict()[k] for k in missing})


def same_pose_copies(latents: torch.Tensor, camera: torch.Tensor | None, reference: torch.Tensor,
                     copies: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Latents (B, V, C, F, h, w) and camera (B, V, F, 12) where each group with ``copies[b]`` holds V copies of its
    view ``reference[b]``'s latent, every one at view 0's camera (the group's reference frame: the identity)."""
    batch = torch.arange(latents.shape[0], device=latents.device)
    copied = latents[batch, reference.to(latents.device)].unsqueeze(1).expand_as(latents)
    latents = torch.where(copies.to(latents.device).view(-1, 1, 1, 1, 1, 1), copied, latents)
    if camera is not None:
        first = camera[:, :1].expand_as(camera)
        camera = torch.where(copies.to(camera.device).view(-1, 1, 1, 1), first, camera)
    return latents, camera


class VAEModule(pl.LightningModule):
    """Reconstruction training of an ``AutoencoderKLWan``: L1 + image-gradient L1 + a light KL term.

    A batch holds ``video`` (B, 3, T, H, W) in [-1, 1]. The gradient term rewards sharp edges, which the
    evaluation's feature matching depends on. With ``image_frames`` = k > 0, k frames drawn from every clip are also
    coded alone, as still images, and their loss is added: the causal VAE codes a video's frame 0 exactly that way,
    and within a clip that frame gets only 1/T of the signal (Wan's VAE is trained on images and videos jointly).
    """

    def __init__(self, vae, learning_rate: float = 3e-4, kl_weight: float = 1e-6,
                 schedule: LearningRateSchedule | None = None, image_frames: int = 0, seed: int = 0):
        super().__init__()
        self.vae = vae
        self.learning_rate = learning_rate
        self.kl_weight = kl_weight
        self.lr_schedule = schedule or LearningRateSchedule()
        self.image_frames = image_frames
        self.seed = seed

    def loss(self, video: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of a batch; ``generator`` (default: torch's global RNG) draws the latent samples and the frames
        coded as images."""
        total, parts = self.reconstruction_loss(video, generator)
        if self.image_frames:
            picks = torch.randperm(video.shape[2], generator=generator)[: self.image_frames]
            images = video[:, :, picks].transpose(1, 2).flatten(0, 1).unsqueeze(2)  # (B * k, 3, 1, H, W)
            image_total, image_parts = self.reconstruction_loss(images, generator)
            total = total + image_total
            parts["image_l1"] = image_parts["l1"]
        return total, parts

    def reconstruction_loss(self, video: torch.Tensor, generator: torch.Generator | None = None
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        posterior = self.vae.encode(video).latent_dist
        reconstruction = self.vae.decode(posterior.sample(generator)).sample  # (B, 3, T, H, W)
        l1 = (reconstruction - video).abs().mean()
        edges = sum(
            (torch.diff(reconstruction, dim=d) - torch.diff(video, dim=d)).abs().mean() for d in (3, 4)
        )
        kl = posterior.kl().mean() / math.prod(video.shape[1:])
        total = l1 + edges + self.kl_weight * kl
        return total, {"l1": l1.detach(), "edges": edges.detach(), "kl": kl.detach()}

    def training_step(self, batch, batch_index):
        total, parts = self.loss(batch["video"], step_generator(self, self.seed, batch_index))
        self.log("train_loss", total, prog_bar=True, on_step=True, batch_size=batch["video"].shape[0])
        self.log_dict({f"train_{k}": v for k, v in parts.items()}, on_step=True, batch_size=batch["video"].shape[0])
        return total

    def configure_optimizers(self):
        trainable = [p for p in self.vae.parameters() if p.requires_grad]
        return adamw_with_schedule(trainable, self.learning_rate, 0.01, self.lr_schedule)


@dataclass(frozen=True)
class LearningRateSchedule:
    """Warm-up, constant, decay: a linear warm-up over the first ``warmup_steps``, then the full rate, then a cosine
    down to zero over the last ``decay_steps`` of ``max_steps``. The factor depends on the step alone, so a run
    resumed with a larger ``max_steps`` goes on at the full rate and decays at its new end."""

    warmup_steps: int = 0
    decay_steps: int = 0
    max_steps: int = 0

    def __post_init__(self):
        if self.decay_steps > self.max_steps > 0:
            raise ValueError(f"decay_steps ({self.decay_steps}) exceeds max_steps ({self.max_steps}); lower it")

    @property
    def is_constant(self) -> bool:
        return self.warmup_steps <= 0 and self.decay_steps <= 0

    def __call__(self, step: int) -> float:
        factor = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        decay_start = self.max_steps - self.decay_steps
        if self.decay_steps > 0 and step >= decay_start:
            factor *= 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - decay_start) / self.decay_steps)))
        return factor


def adamw_with_schedule(parameters, learning_rate: float, weight_decay: float, schedule: LearningRateSchedule):
    """AdamW (the release's optimizer; the release trains at a constant rate), with the schedule's warm-up and decay
    for models trained from scratch."""
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    if schedule.is_constant:
        return optimizer
    # A plain function, not the schedule object: LambdaLR checkpoints a callable object's fields and would restore the
    # old max_steps over a resumed run's new one.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
