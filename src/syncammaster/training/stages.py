"""The four training stages of a SynCamMaster model (see ``config.py``), each resumable and exported on completion."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..atomic import save_atomically
from ..camera_conventions import SYNCAMVIDEO_FOCAL_PER_SIDE
from ..compilation import check_compile
from ..model_files import check_components, read_json_object
from ..ranks import on_global_zero
from .config import TrainConfig
from .modules import FlowMatchingModule, LearningRateSchedule, VAEModule
from .runner import VideoClipDataset, check_strategy, fit

logger = logging.getLogger(__name__)

# Wan's VAE: 8x spatial, 4x temporal compression (the pipeline's size checks rely on it).
WAN_TEMPORAL_DOWNSAMPLE = (False, True, True)
# Clips used to measure the latent statistics written into the VAE's config.
LATENT_STATS_CLIPS = 32
LATENT_STATS_BATCH = 4  # clips encoded together (batches of one run a slow CPU kernel)


def train(config: TrainConfig, restart: bool = False, progress_bar: bool = True) -> Path:
    """Runs ``config.stage`` to ``max_steps`` (resuming if interrupted) and exports the result; returns its folder.

    In a multi-process run every process returns the folder, which global rank 0 alone has written.
    """
    check_strategy(config)  # before any data is read
    stage = {"text": train_text, "vae": train_vae, "base": train_base, "sync": train_sync}[config.stage]
    return stage(config, restart=restart, progress_bar=progress_bar)


def _index(config: TrainConfig, progress_bar: bool = True):
    from ..data import SceneIndex

    return SceneIndex.build(config.data_root, progress=progress_bar)


# ---------------------------------------------------------------------- text


def train_text(config: TrainConfig, restart: bool = False, progress_bar: bool = True) -> Path:
    """A word-level tokenizer over the dataset's captions and a frozen, randomly initialised small UMT5 encoder.

    Frozen-random rather than trained: captions come from a closed vocabulary, a random UMT5 already maps each word
    in context to a distinct, deterministic vector, and the transformer's trained cross-attention learns to read
    them; training the encoder would need a text objective of its own for no gain in this setting.
    """
    from transformers import UMT5Config, UMT5EncoderModel

    from ..text import build_caption_tokenizer

    captions = [scene.caption for scene in _index(config, progress_bar)]
    tokenizer = build_caption_tokenizer(captions, max_vocab_size=config.text.max_vocab_size,
                                        model_max_length=config.max_sequence_length)
    torch.manual_seed(config.seed)
    text = config.text
    encoder = UMT5EncoderModel(
        UMT5Config(vocab_size=len(tokenizer), d_model=text.d_model, d_kv=text.d_kv, d_ff=text.d_ff,
                   num_layers=text.num_layers, num_heads=text.num_heads, feed_forward_proj="gated-gelu",
                   dropout_rate=0.0)
    ).eval()

    def export():
        save_atomically(tokenizer.save_pretrained, config.export_path / "tokenizer")
        save_atomically(encoder.save_pretrained, config.export_path / "text_encoder")

    on_global_zero(export)
    logger.info("text components: %d-word vocabulary, width %d", len(tokenizer), text.d_model)
    return config.export_path


# ---------------------------------------------------------------------- vae


def train_vae(config: TrainConfig, restart: bool = False, progress_bar: bool = True) -> Path:
    from diffusers import AutoencoderKLWan

    index = _index(config, progress_bar)
    videos = [index.video_path(scene, camera) for scene in index for camera in scene.cameras]
    v = config.vae
    torch.manual_seed(config.seed)
    if v.init_from is not None:
        vae = AutoencoderKLWan.from_pretrained(v.init_from)
    else:
        vae = AutoencoderKLWan(base_dim=v.base_dim, z_dim=v.z_dim, dim_mult=list(v.dim_mult),
                               num_res_blocks=v.num_res_blocks, temperal_downsample=list(WAN_TEMPORAL_DOWNSAMPLE),
                               latents_mean=[0.0] * v.z_dim, latents_std=[1.0] * v.z_dim)
    vae.train()  # from_pretrained returns eval mode, which Lightning warns about at the start of training
    if not v.train_encoder:
        vae.requires_grad_(False)
        vae.decoder.requires_grad_(True)
        vae.post_quant_conv.requires_grad_(True)
    module = VAEModule(vae, learning_rate=config.learning_rate, kl_weight=v.kl_weight,
                       schedule=lr_schedule(config), image_frames=v.image_frames,
                       seed=config.seed)
    dataset = VideoClipDataset(videos, v.clip_frames, v.crop_size, config.max_steps * config.batch_size, config.seed)
    fit(config, module, dataset, restart=restart, progress_bar=progress_bar)

    vae = module.vae.float().eval()

    def export():
        if v.train_encoder:  # a frozen encoder keeps the latent statistics the models downstream were trained with
            mean, std = latent_statistics(vae, videos, config)
            vae.register_to_config(latents_mean=mean, latents_std=std)
        save_atomically(vae.save_pretrained, config.export_path / "vae")

    on_global_zero(export)
    return config.export_path


def lr_schedule(config: TrainConfig) -> LearningRateSchedule:
    return LearningRateSchedule(config.warmup_steps, config.decay_steps, config.max_steps)


@torch.no_grad()
def latent_statistics(vae, videos: list[Path], config: TrainConfig) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the VAE's posterior means over clips of full frames (for latent normalisation)."""
    clips = VideoClipDataset(videos, config.num_frames, min(config.height, config.width), LATENT_STATS_CLIPS,
                             seed=config.seed + 1)
    batch = torch.stack([clips[i]["video"] for i in range(len(clips))])  # (N, 3, T, H, W)
    latents = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in batch.split(LATENT_STATS_BATCH)])
    channels = latents.transpose(0, 1).flatten(1)  # (z_dim, N)
    return channels.mean(1).tolist(), channels.std(1).clamp_min(1e-3).tolist()


# ---------------------------------------------------------------------- base and sync


def _components(config: TrainConfig):
    from diffusers import AutoencoderKLWan
    from transformers import AutoTokenizer, UMT5EncoderModel

    folder = Path(config.components)
    absent = [name for name in ("tokenizer", "text_encoder", "vae") if not (folder / name).is_dir()]
    if absent:
        raise FileNotFoundError(f"components folder {folder} lacks {', '.join(absent)}/; run the text and vae stages")
    check_components(folder, ("tokenizer", "text_encoder", "vae"))  # configs readable, weights whole
    return (
        AutoTokenizer.from_pretrained(folder / "tokenizer"),
        UMT5EncoderModel.from_pretrained(folder / "text_encoder").eval(),
        AutoencoderKLWan.from_pretrained(folder / "vae").eval(),
    )


def _latent_dataset(config: TrainConfig, index, num_views: int, components, progress_bar: bool = True):
    from ..data import LatentViewDataset, cache_dataset

    tokenizer, text_encoder, vae = components
    # On several devices every process encodes its share of what is missing, and all wait until the latent cache is
    # whole.
    cache_dataset(index, vae, tokenizer, text_encoder, config.cache_path, num_frames=config.num_frames,
                  height=config.height, width=config.width, max_sequence_length=config.max_sequence_length,
                  batch_size=config.cache_batch_size, use_lightning=_world_size(config) > 1, devices=config.devices,
                  progress=progress_bar)
    return LatentViewDataset(index, config.cache_path, num_views=num_views, max_az=config.max_azimuth,
                             max_el=config.max_elevation, max_sequence_length=config.max_sequence_length,
                             seed=config.seed, length=config.max_steps * config.batch_size * _world_size(config))


def _world_size(config: TrainConfig) -> int:
    if config.devices == "auto":
        return max(1, torch.cuda.device_count())
    return int(config.devices)


def train_base(config: TrainConfig, restart: bool = False, progress_bar: bool = True) -> Path:
    from diffusers import WanTransformer3DModel

    index = _index(config, progress_bar)
    components = _components(config)
    dataset = _latent_dataset(config, index, 1, components, progress_bar)
    if config.base_model is not None:
        transformer = _load_wan_transformer(config.base_model)
    else:
        t = config.transformer
        torch.manual_seed(config.seed)
        transformer = WanTransformer3DModel(
            patch_size=tuple(t.patch_size), num_attention_heads=t.num_attention_heads,
            attention_head_dim=t.attention_head_dim, in_channels=t.in_channels, out_channels=t.out_channels,
            text_dim=t.text_dim, freq_dim=t.freq_dim, ffn_dim=t.ffn_dim, num_layers=t.num_layers,
            cross_attn_norm=True,
        )
    transformer = _fit_transformer(config, transformer, dataset, components, restart, progress_bar)
    on_global_zero(lambda: save_atomically(transformer.save_pretrained, config.export_path))
    return config.export_path


def _null_prompt_embeds(config: TrainConfig, components) -> torch.Tensor:
    """(L, text_dim) embedding of the empty caption, exactly as the pipeline encodes an empty negative prompt."""
    from ..encoding import encode_captions, pad_prompt_embeds

    tokenizer, text_encoder, _ = components
    with torch.no_grad():
        embeds = encode_captions(tokenizer, text_encoder, [""], config.max_sequence_length)[0]
    return pad_prompt_embeds(embeds, config.max_sequence_length)


def _fit_transformer(config: TrainConfig, transformer, dataset, components, restart: bool, progress_bar: bool):
    """Flow-matching training of ``transformer``; returns it in fp32, eval mode, without gradient checkpointing."""
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if config.compile:
        check_compile(None, "compile = true", "set compile = false")
        transformer.compile()  # in place: parameter names, checkpoints and the export stay those of the eager model
    null = _null_prompt_embeds(config, components) if config.caption_dropout > 0 else None
    module = FlowMatchingModule(transformer, config.learning_rate, config.weight_decay, lr_schedule(config),
                                config.shift, config.bf16_timesteps, config.seed, config.caption_dropout, null,
                                config.reference_view_prob, config.same_pose_prob)
    fit(config, module, dataset, restart=restart, progress_bar=progress_bar)
    transformer = module.transformer.float().eval()
    transformer.disable_gradient_checkpointing()
    return transformer.requires_grad_(False)


def _transformer_folder(folder: str | Path) -> tuple[Path, str | None, dict]:
    """(folder, subfolder, config) of the transformer in a model folder or a transformer folder."""
    folder = Path(folder)
    subfolder = "transformer" if (folder / "transformer" / "config.json").is_file() else None
    config_file = folder / (subfolder or "") / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} holds no transformer (no config.json, no transformer/config.json); "
                                "pass the folder exported by the base stage or a Wan diffusers folder")
    return folder, subfolder, read_json_object(config_file)  # one-line ModelFilesError when unreadable


def _load_wan_transformer(folder: str | Path):
    from diffusers import WanTransformer3DModel

    folder, subfolder, _ = _transformer_folder(folder)
    return WanTransformer3DModel.from_pretrained(folder, subfolder=subfolder)


def _load_sync_start(folder: str | Path):
    """The transformer stage sync starts from: a SynCamMaster model as it is (its module is fine-tuned), or a Wan
    transformer with a fresh module (SynCamMaster's zero / copy initialisation)."""
    from ..models import SynCamMasterTransformer3DModel

    folder, subfolder, config = _transformer_folder(folder)
    if config.get("_class_name") == SynCamMasterTransformer3DModel.__name__:
        return SynCamMasterTransformer3DModel.from_pretrained(folder, subfolder=subfolder)
    return SynCamMasterTransformer3DModel.from_wan(_load_wan_transformer(folder))


def train_sync(config: TrainConfig, restart: bool = False, progress_bar: bool = True) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ..pipeline import WAN_NEGATIVE_PROMPT, SynCamMasterPipeline

    index = _index(config, progress_bar)
    components = _components(config)
    dataset = _latent_dataset(config, index, config.num_views, components, progress_bar)
    transformer = _load_sync_start(config.base_model)
    if config.lora_rank > 0:  # the model stays as it is; a LoRA over it is trained (and exported to novel_view_lora/)
        from ..lora import add_novel_view_adapter

        add_novel_view_adapter(transformer, config.lora_rank, config.lora_targets)
    transformer = _fit_transformer(config, transformer, dataset, components, restart, progress_bar)

    tokenizer, text_encoder, vae = components
    pipe = SynCamMasterPipeline(tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer, vae=vae,
                                scheduler=FlowMatchEulerDiscreteScheduler(shift=config.shift),
                                focal_length_per_side=data_focal_per_side(index),
                                max_sequence_length=config.max_sequence_length,
                                # With caption dropout the unconditional branch learned the empty caption.
                                negative_prompt="" if config.caption_dropout > 0 else WAN_NEGATIVE_PROMPT,
                                default_height=config.height, default_width=config.width,
                                default_num_frames=config.num_frames)

    def save(folder: Path) -> None:  # the record goes into the same staging folder: the export is whole or absent
        pipe.save_pretrained(folder)  # with a LoRA: the transformer without it, and the LoRA in novel_view_lora/
        (folder / "training.json").write_text(json.dumps(_training_record(config), indent=2) + "\n")

    on_global_zero(lambda: save_atomically(save, config.export_path))
    return config.export_path


def data_focal_per_side(index) -> float:
    """fx / max(W, H) of the training data (its intrinsics.json), or SynCamVideo's 24 / 23.76 when it has none."""
    intrinsics = next((scene.intrinsics for scene in index if scene.intrinsics is not None), None)
    if intrinsics is None:
        return SYNCAMVIDEO_FOCAL_PER_SIDE
    return intrinsics.fx / max(intrinsics.width, intrinsics.height)


def _training_record(config: TrainConfig) -> dict:
    return {"stage": config.stage, "max_steps": config.max_steps, "num_views": config.num_views,
            "num_frames": config.num_frames, "height": config.height, "width": config.width,
            "learning_rate": config.learning_rate, "batch_size": config.batch_size, "seed": config.seed,
            "reference_view_prob": config.reference_view_prob,
            "same_pose_prob": config.same_pose_prob, "lora_rank": config.lora_rank,
            "lora_targets": list(config.lora_targets) if config.lora_rank > 0 else []}
