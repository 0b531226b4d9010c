"""Encode a dataset once: every video through the VAE, every caption through the text encoder (the release's
``--task data_process``), so training reads small tensors instead of decoding videos and running UMT5.

```
CACHE/
  cache_config.json                          what made the cache (frames, size, text length, model fingerprints)
  scene_index.json                           the SceneIndex the cache was made from (SceneIndex.load)
  <subset>/<scene>/<camera>.safetensors      "latents" (C, F_latent, h, w): normalised VAE posterior mean
  <subset>/<scene>/text.safetensors          "prompt_embeds" (L_valid, text_dim): UMT5 output of the valid tokens
```

Latents are the mean of the VAE posterior, normalised as ``(mu - latents_mean) / latents_std`` with the VAE config's
per-channel statistics: exactly the inverse of ``SynCamMasterPipeline.decode_latents``. This is what the release
caches: DiffSynth's ``WanVideoVAE.encode`` returns the normalised ``mu`` (its ``log_var`` is discarded and nothing is
sampled). Prompt embeddings keep only the caption's valid tokens; :func:`pad_prompt_embeds` pads them with zeros to the
model's 512 tokens exactly as diffusers' ``WanPipeline._get_t5_prompt_embeds`` does (and the release's prompter,
which zeroes the outputs after the valid length).

Frames: the first ``num_frames`` frames of each video, scaled until (height, width) fits inside and centre-cropped
to it, the release's rule (1280x1280 -> 832x832 -> 480x832); values in [-1, 1].

Caching is resumable: an item whose file exists is not encoded again (a caption file is redone if the caption
changed); every file is written to a temporary file in its folder and renamed, so an interrupted run leaves no
half-written file. ``use_lightning=True`` runs the same work through a Lightning ``Trainer.predict``, which shards the
items over every available GPU.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from tqdm.auto import tqdm

from ..atomic import write_atomically
from ..encoding import encode_captions, encode_videos, resize_and_crop
from ..ranks import on_global_zero
from ..video import VideoTooShortError, read_clip
from .index import DatasetError, SceneIndex

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

CACHE_CONFIG_FILE = "cache_config.json"
CACHE_INDEX_FILE = "scene_index.json"
TEXT_FILE = "text.safetensors"
LATENTS_KEY = "latents"
PROMPT_EMBEDS_KEY = "prompt_embeds"
CACHE_FORMAT = "syncammaster-latent-cache"
CACHE_VERSION = 1
# Wan pads every caption to 512 UMT5 tokens (T5_CONTEXT_TOKEN_NUMBER in syncammaster.pipeline).
DEFAULT_MAX_SEQUENCE_LENGTH = 512
# Values per tensor that enter a model fingerprint: the first, the last and an evenly strided sample.
FINGERPRINT_SAMPLES = 1024
STORAGE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def latents_file(cache_dir: str | Path, scene: str, camera: str) -> Path:
    """CACHE/<subset>/<scene>/<camera>.safetensors."""
    return Path(cache_dir) / scene / f"{camera}.safetensors"


def text_file(cache_dir: str | Path, scene: str) -> Path:
    """CACHE/<subset>/<scene>/text.safetensors."""
    return Path(cache_dir) / scene / TEXT_FILE


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
# What made a cache
# ----------------------------------------------------------------------------------------------------------------

# Config entries that say where or with which library version a model was saved, not what it computes.
_NON_DEFINING_CONFIG_KEYS = {"name_or_path", "transformers_version", "dtype", "torch_dtype"}


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of a model's class, config and weights, to tell whether two caches used the same model.

    Every parameter and buffer contributes its name, dtype, shape and the exact bytes of a fixed sample of its values
    (the first, last and evenly strided ``FINGERPRINT_SAMPLES``): cheap for a 5B-parameter encoder, wherever it
    lives, and different for any other checkpoint or precision (not for a single edited weight).
    """
    digest = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    if config is not None:
        config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        defining = {
            key: value
            for key, value in config_dict.items()
            if not key.startswith("_") and key not in _NON_DEFINING_CONFIG_KEYS
        }
        digest.update(json.dumps(defining, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        flat = tensor.detach().reshape(-1)  # (N,)
        if flat.numel() == 0:
            continue
        stride = max(1, flat.numel() // FINGERPRINT_SAMPLES)
        n = FINGERPRINT_SAMPLES
        sample = torch.cat([flat[:n], flat[-n:], flat[::stride][:n]])  # (<= 3n,)
        digest.update(sample.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of a tokenizer's full definition (a fast tokenizer's JSON, else its class and vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = backend.to_str()
    else:
        definition = json.dumps([type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())])
    return hashlib.sha256(definition.encode()).hexdigest()[:16]


def _model_name(model) -> str | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    name = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    return str(name) if name else None


@dataclass(frozen=True)
class CacheSettings:
    """What a cached item depends on, besides the models."""

    num_frames: int  # video frames encoded, 4k + 1, the first ones of each video
    height: int  # pixels after resize and crop
    width: int
    max_sequence_length: int  # caption tokens, padding included (Wan: 512)
    storage_dtype: str = "float32"  # dtype of the stored tensors: "float32" or "bfloat16"


def _cache_config(settings: CacheSettings, vae, tokenizer, text_encoder) -> dict:
    """The content of cache_config.json. Everything but the "name" entries must match for a cache to be reused."""
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        **asdict(settings),
        "temporal_stride": vae.config.scale_factor_temporal,
        "spatial_stride": vae.config.scale_factor_spatial,
        "latents": "VAE posterior mean, (mu - latents_mean) / latents_std",
        "vae": {"class": type(vae).__name__, "fingerprint": model_fingerprint(vae), "name": _model_name(vae)},
        "text_encoder": {
            "class": type(text_encoder).__name__,
            "fingerprint": model_fingerprint(text_encoder),
            "name": _model_name(text_encoder),
        },
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "fingerprint": tokenizer_fingerprint(tokenizer),
            "name": getattr(tokenizer, "name_or_path", None) or None,
        },
    }


def _defining(config: dict) -> dict:
    """Flatten a cache config to "key" / "model.key" entries, without the informative "name" entries."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if k != "name"})
        else:
            flat[key] = value
    return flat


def read_cache_config(cache_dir: str | Path) -> dict:
    """The cache_config.json of a cache folder (DatasetError if there is none or it is unreadable)."""
    path = Path(cache_dir) / CACHE_CONFIG_FILE
    if not path.is_file():
        raise DatasetError(f"{cache_dir} is not a latent cache (no {CACHE_CONFIG_FILE}); make one with cache_dataset")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path} ({e}); delete the cache folder and make it again") from None
    if not isinstance(config, dict) or config.get("format") != CACHE_FORMAT or config.get("version") != CACHE_VERSION:
        raise DatasetError(f"{path} is not a version-{CACHE_VERSION} latent cache config; make the cache again")
    return config


def _check_or_write_config(cache_dir: Path, config: dict) -> None:
    """Refuse a cache made with other settings or models; write the config into a new cache."""
    if (cache_dir / CACHE_CONFIG_FILE).exists():
        existing, wanted = _defining(read_cache_config(cache_dir)), _defining(config)
        differences = [
            f"{key} {existing.get(key)!r} -> {wanted.get(key)!r}"
            for key in sorted(set(existing) | set(wanted))
            if existing.get(key) != wanted.get(key)
        ]
        if differences:
            raise DatasetError(
                f"cache {cache_dir} was made with other settings ({'; '.join(differences)}); cache into a new folder, "
                "or delete it to rebuild"
            )
        return
    write_atomically(cache_dir / CACHE_CONFIG_FILE, json.dumps(config, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Work items
# ----------------------------------------------------------------------------------------------------------------


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """A safetensors file, all or nothing, with the permissions of any file this process creates."""
    write_atomically(path, save(tensors, metadata=metadata))


def _cached_caption(path: Path) -> str | None:
    """The caption recorded in a text.safetensors, None if the file is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("caption")
    except (OSError, SafetensorError):
        return None


def _is_done(item: dict) -> bool:
    target = Path(item["target"])
    if item["kind"] == "text":
        return _cached_caption(target) == item["caption"]
    return target.is_file()


def _work_items(index: SceneIndex, cache_dir: Path) -> list[dict]:
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
        item["done"] = _is_done(item)
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
                tensors = {LATENTS_KEY: latent.to(storage_dtype).contiguous()}
                _save_atomic(tensors, Path(item["target"]), {"scene": item["scene"], "camera": item["camera"]})
        if texts:
            captions = [item["caption"] for item in texts]
            embeds = encode_captions(self.tokenizer, self.text_encoder, captions, self.settings.max_sequence_length)
            for item, embed in zip(texts, embeds, strict=True):
                tensors = {PROMPT_EMBEDS_KEY: embed.to(storage_dtype).contiguous()}  # (L_valid, D)
                _save_atomic(tensors, Path(item["target"]), {"scene": item["scene"], "caption": item["caption"]})
        return len(videos) + len(texts)


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
    """Encode every video and caption of ``index`` into ``cache_dir`` (layout: module docstring); resumable.

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
    _check_or_write_config(cache_dir, _cache_config(settings, vae, tokenizer, text_encoder))

    # 3. What is left to do.
    items = _work_items(index, cache_dir)
    pending = [item for item in items if not _is_done(item)]
    writer = CacheWriter(vae, tokenizer, text_encoder, settings)
    dataset = CacheItemDataset(pending, settings)

    # 4. Encode and write.
    num_written = 0
    if pending and use_lightning:
        from .cache_lightning import cache_with_lightning

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
