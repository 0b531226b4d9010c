"""Typed training configs, read from TOML files (``syncammaster train --config FILE``).

One file describes one stage. Defaults follow the release's SynCamMaster training of Wan2.1-T2V-1.3B (stage
"sync": batch 1 per device, lr 1e-4, 20k steps, 2 views at most 30 deg azimuth / 15 deg elevation apart, 81 frames at
480x832); ``configs/paper/sync_wan2.1_1.3b.toml`` adds its hardware (8 GPUs, bf16, DeepSpeed stage 1) and says where
each value comes from. The small model shipped with the package has its own files in ``configs/small/``.

Stages:
    text  builds the word-level tokenizer from the dataset's captions and a frozen, randomly initialised UMT5 encoder
    vae   trains a small ``AutoencoderKLWan`` on clips of the dataset's videos
    base  trains a Wan text-to-video transformer on single-view clips (all parameters)
    sync  adds the multi-view synchronization module to the base and trains only it, on view groups
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Stage = Literal["text", "vae", "base", "sync"]
STAGES = ("text", "vae", "base", "sync")
# Layers the novel-view LoRA (``lora_rank`` > 0) adapts by default, as peft's ``target_modules`` (a layer's name, or
# its end after a dot): the two attentions through which a given view's content can move, the multi-view module's
# (across views: q/k/v/o, its output projector and camera encoder) and the base's self-attention ``attn1`` (within a
# view, where the module's small residual meets the view's own tokens). The FFN acts on each token alone and the
# cross-attention reads the caption, so neither can carry a view's content elsewhere; "ffn.net.0.proj" and
# "ffn.net.2" add the FFN.
DEFAULT_LORA_TARGETS = (
    "mvs_attn.to_q", "mvs_attn.to_k", "mvs_attn.to_v", "mvs_attn.to_out.0", "projector", "cam_encoder",
    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
)
STRATEGIES = ("auto", "ddp", "fsdp", "deepspeed", "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_3")


@dataclass
class TransformerConfig:
    """A Wan transformer built from scratch (stage "base"); Wan2.1-1.3B's values by default."""

    num_attention_heads: int = 12
    attention_head_dim: int = 128
    num_layers: int = 30
    ffn_dim: int = 8960
    in_channels: int = 16  # = the VAE's z_dim
    out_channels: int = 16
    text_dim: int = 4096  # = the text encoder's width
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)


@dataclass
class VAEConfig:
    """A small ``AutoencoderKLWan`` (stage "vae"): 8x spatial and 4x temporal compression as Wan's."""

    base_dim: int = 24
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 1
    kl_weight: float = 1e-6  # a light KL term keeps the latent space smooth without blurring reconstructions
    crop_size: int = 64  # training crops (the VAE is convolutional, so crops generalise to full frames)
    clip_frames: int = 5  # 4k+1 frames per training clip
    image_frames: int = 0  # frames of each clip also trained as still images (how the VAE codes frame 0)
    init_from: str | None = None  # continue from this VAE folder instead of a fresh one
    train_encoder: bool = True  # False: fine-tune the decoder only, so latents (a latent cache, models) stay valid


@dataclass
class TextConfig:
    """A small UMT5 encoder over a word-level caption vocabulary (stage "text")."""

    d_model: int = 64
    d_kv: int = 16
    d_ff: int = 128
    num_layers: int = 2
    num_heads: int = 4
    max_vocab_size: int = 4096


@dataclass
class TrainConfig:
    stage: Stage
    data_root: str  # a SynCamVideo-layout root (metadata.csv, train/<subset>/<scene>/...)
    output_dir: str  # checkpoints/, metrics.csv and the exported folder
    components: str | None = None  # folder with tokenizer/, text_encoder/, vae/ (written by stages text and vae)
    cache_dir: str | None = None  # the latent cache (stages base and sync); default: output_dir/cache
    # Stage sync: folder of the trained base transformer (or a Wan diffusers folder), or of a SynCamMaster model
    # (pipeline or transformer), whose multi-view module is then fine-tuned instead of started from zero.
    base_model: str | None = None
    export_dir: str | None = None  # where the result goes; default: output_dir/export
    # Data
    num_views: int = 2  # stage sync; stage base always uses single views
    max_azimuth: float = 30.0  # degrees between any two views of a group (the release's sample list)
    max_elevation: float = 15.0
    num_frames: int = 81
    height: int = 480
    width: int = 832
    max_sequence_length: int = 512
    # Videos the VAE encodes together when stages base and sync fill the latent cache. On a CPU 2-4 are faster per
    # video than 1 (torch sends a batch of one small video to a slow generic 3-D convolution; benchmarks/RESULTS.md,
    # "Speed and memory", table 6).
    cache_batch_size: int = 1
    # Optimisation (the release: AdamW, lr 1e-4 in its training command, batch 1 per GPU, 20k steps)
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    decay_steps: int = 0  # cosine decay of the learning rate to zero over the last N steps (0: constant)
    batch_size: int = 1
    max_steps: int = 20000
    gradient_clip: float | None = None
    shift: float = 5.0  # flow-matching sigma shift
    caption_dropout: float = 0.0  # share of groups trained on the empty caption (for classifier-free guidance)
    # Stage sync: share of groups where one random view is given clean (timestep 0) and left out of the loss, the
    # paper's fine-tuning for novel views of a given video (Sec. 3.5). 0: text-only training, as released.
    reference_view_prob: float = 0.0
    # Stage sync: share of the groups with a given view that are same-pose copies instead: every view is the given
    # view's latent at view 0's pose (the identity), each with its own noise, so the model learns to carry the given
    # view into the others where no geometry is involved (docs/model_history.md, "A given view in every group, and the
    # same-pose copy task": trained on real groups alone, the given view never reaches the generated ones). 0: real
    # groups only.
    same_pose_prob: float = 0.0
    # Stage sync: train a LoRA of this rank (peft, alpha = rank) on the layers named by ``lora_targets`` instead of the
    # multi-view module: the whole transformer stays frozen, checkpoints hold the adapter alone, and the export is
    # base_model's pipeline unchanged plus the adapter in novel_view_lora/ (diffusers' LoRA file), which the pipeline
    # turns on for calls with a reference video only. 0: off, the module itself is trained.
    lora_rank: int = 0
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    bf16_timesteps: bool = True  # the release fed timesteps in bf16; keep for parity when fine-tuning its weights
    gradient_checkpointing: bool = True
    # torch.compile the transformer (stages base and sync): a faster step after a minute or so of compiling
    # (benchmarks/RESULTS.md, "Speed and memory", table 7); a CPU needs a C++ compiler for it.
    compile: bool = False
    # Hardware
    precision: str = "auto"  # "auto": bf16-mixed on GPU, 32-true on CPU
    strategy: str = "auto"
    devices: str | int = "auto"
    num_workers: int = 2
    # Bookkeeping
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 0
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    text: TextConfig = field(default_factory=TextConfig)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if (self.num_frames - 1) % 4:
            raise ValueError(f"num_frames={self.num_frames} is not of the form 4k+1")
        if self.height % 16 or self.width % 16:
            raise ValueError(f"height and width must be multiples of 16, got {self.height}x{self.width}")
        if not 0 <= self.decay_steps <= self.max_steps:
            raise ValueError(f"decay_steps must be in [0, max_steps={self.max_steps}], got {self.decay_steps}")
        if self.cache_batch_size < 1:
            raise ValueError(f"cache_batch_size must be >= 1, got {self.cache_batch_size}")
        if not 0 <= self.vae.image_frames <= self.vae.clip_frames:
            raise ValueError(f"vae.image_frames must be in [0, clip_frames={self.vae.clip_frames}], "
                             f"got {self.vae.image_frames}")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        if not 0.0 <= self.reference_view_prob <= 1.0:
            raise ValueError(f"reference_view_prob must be in [0, 1], got {self.reference_view_prob}")
        if self.reference_view_prob > 0 and (self.stage != "sync" or self.num_views < 2):
            raise ValueError("reference_view_prob needs stage 'sync' with num_views >= 2 (a view to give and one to "
                             "generate)")
        if not 0.0 <= self.same_pose_prob <= 1.0:
            raise ValueError(f"same_pose_prob must be in [0, 1], got {self.same_pose_prob}")
        if self.same_pose_prob > 0 and self.reference_view_prob == 0:
            raise ValueError("same_pose_prob needs reference_view_prob > 0 (a copy group is built from its given view)")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0: no LoRA, train the multi-view module), got {self.lora_rank}")
        if self.lora_rank > 0 and self.stage != "sync":
            raise ValueError("lora_rank needs stage 'sync' (the novel-view adapter over a SynCamMaster model)")
        self.lora_targets = tuple(self.lora_targets)
        if not self.lora_targets or not all(isinstance(t, str) and t.strip(". ") for t in self.lora_targets):
            raise ValueError(f"lora_targets must be a list of layer names (e.g. [\"attn1.to_q\", \"projector\"]), "
                             f"got {list(self.lora_targets)}")
        if self.stage == "sync" and self.base_model is None:
            raise ValueError("stage 'sync' needs base_model (the trained base transformer or a Wan diffusers folder)")
        if self.stage in ("base", "sync") and self.components is None:
            raise ValueError(f"stage {self.stage!r} needs components (the folder with tokenizer/, text_encoder/, vae/)")
        if self.stage != "sync":
            self.num_views = 1

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    @property
    def export_path(self) -> Path:
        return Path(self.export_dir) if self.export_dir else self.run_dir / "export"

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else self.run_dir / "cache"


CONFIG_EXAMPLE = "configs/small/base.toml"


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Reads a TOML config; relative paths inside it are relative to the file's folder.

    A path that is not a readable TOML file raises FileNotFoundError or ValueError with a one-line message.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config {path} is a folder; pass one stage's TOML file (e.g. {CONFIG_EXAMPLE})")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise ValueError(f"config {path} is not a text file; pass a TOML config (e.g. {CONFIG_EXAMPLE})") from None
    except OSError as error:
        raise ValueError(f"cannot read config {path} ({error.strerror}); pass a readable TOML file") from None
    if "\x00" in text:  # valid UTF-8 still, but binary (a weights file, an archive)
        raise ValueError(f"config {path} is not a text file; pass a TOML config (e.g. {CONFIG_EXAMPLE})")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config {path} is not valid TOML ({error}); see {CONFIG_EXAMPLE} for the format") from None
    data.update(overrides or {})
    _check_sections(data, str(path))
    for key in ("data_root", "output_dir", "components", "cache_dir", "base_model", "export_dir"):
        if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
            data[key] = str((path.parent / data[key]).resolve())
    vae = data.get("vae", {})
    if isinstance(vae.get("init_from"), str) and not Path(vae["init_from"]).is_absolute():
        vae["init_from"] = str((path.parent / vae["init_from"]).resolve())
    return config_from_dict(data, source=str(path))


NESTED_SECTIONS = {"transformer": TransformerConfig, "vae": VAEConfig, "text": TextConfig}


def config_from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Builds a TrainConfig, naming unknown keys (a typo must not be silently ignored), missing required keys and
    values of the wrong type."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; known keys: {', '.join(sorted(known))}")
    required = [f.name for f in dataclasses.fields(TrainConfig)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{source}: required keys {', '.join(missing)} are missing (see {CONFIG_EXAMPLE})")
    _check_sections(data, source)
    _check_types(data, TrainConfig, source, "")
    values = dict(data)
    for key, cls in NESTED_SECTIONS.items():
        if key in values:
            section = values[key]
            fields = {f.name for f in dataclasses.fields(cls)}
            bad = sorted(set(section) - fields)
            if bad:
                raise ValueError(f"{source}: unknown keys {bad} in [{key}]; known: {', '.join(sorted(fields))}")
            _check_types(section, cls, source, f"[{key}] ")
            values[key] = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})
    try:
        return TrainConfig(**values)
    except TypeError as error:
        raise ValueError(f"{source}: {error}") from None


def _check_sections(data: dict[str, Any], source: str) -> None:
    for key in NESTED_SECTIONS:
        if key in data and not isinstance(data[key], dict):
            raise ValueError(f"{source}: {key} must be a [{key}] table of settings, got {data[key]!r}")


def _check_types(values: dict[str, Any], cls: type, source: str, section: str) -> None:
    """ValueError naming the first value whose type does not fit the field of ``cls`` it sets."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        hint = hints[key]
        if key not in NESTED_SECTIONS and not _fits(value, hint):
            raise ValueError(f"{source}: {section}{key} = {value!r} is not {_describe(hint)}")


def _fits(value: Any, hint: Any) -> bool:
    """Whether a TOML value can set a field typed ``hint`` (int for float, list for tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in args)
    if origin is Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(item, args[0]) for item in value)
        return len(value) == len(args) and all(_fits(item, arm) for item, arm in zip(value, args, strict=True))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in args if arm is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return "a list of strings" if args and args[0] is str else "a list of numbers"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(hint, str(hint))
