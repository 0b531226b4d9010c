"""The latent cache's files: where each entry lives, what made the cache, writing and reading entries.

A latent cache holds a dataset encoded once (``syncammaster cache``, :func:`syncammaster.data.cache_dataset`): every
video through the VAE, every caption through the text encoder (the release's ``--task data_process``), so training
reads small tensors instead of decoding videos and running UMT5.

```
CACHE/
  cache_config.json                          what made the cache (frames, size, text length, model fingerprints)
  scene_index.json                           the SceneIndex the cache was made from (SceneIndex.load)
  <subset>/<scene>/<camera>.safetensors      "latents" (C, F_latent, h, w): normalised VAE posterior mean
  <subset>/<scene>/text.safetensors          "prompt_embeds" (L_valid, text_dim): UMT5 output of the valid tokens
```

Latents are the mean of the VAE posterior, normalised as ``(mu - latents_mean) / latents_std`` with the VAE config's
per-channel statistics (``syncammaster.encoding``): exactly the inverse of ``SynCamMasterPipeline.decode_latents``.
This is what the release caches: DiffSynth's ``WanVideoVAE.encode`` returns the normalised ``mu`` (its ``log_var`` is
discarded and nothing is sampled). Prompt embeddings keep only the caption's valid tokens; ``pad_prompt_embeds`` pads
them with zeros to the model's 512 tokens exactly as diffusers' ``WanPipeline._get_t5_prompt_embeds`` does (and the
release's prompter, which zeroes the outputs after the valid length). A caption's file records the caption, so a
changed caption is encoded again.

Every file is written to a temporary file in its folder and renamed (``syncammaster.atomic``): an interrupted run
leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from ..atomic import write_atomically
from ..jsonfile import read_json
from .index import DatasetError

__all__ = [
    "CACHE_CONFIG_FILE",
    "CACHE_INDEX_FILE",
    "CacheSettings",
    "cache_config",
    "cached_caption",
    "check_or_write_config",
    "latents_file",
    "model_fingerprint",
    "read_cache_config",
    "read_latents",
    "read_prompt_embeds",
    "text_file",
    "tokenizer_fingerprint",
    "write_entry",
    "write_latents",
    "write_prompt_embeds",
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


def cache_config(settings: CacheSettings, vae, tokenizer, text_encoder) -> dict:
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
    """The cache_config.json of a latent cache folder: DatasetError if there is none or it is of another format,
    JSONFileError if it is unreadable."""
    path = Path(cache_dir) / CACHE_CONFIG_FILE
    if not path.is_file():
        raise DatasetError(f"{cache_dir} is not a latent cache (no {CACHE_CONFIG_FILE}); make one with cache_dataset")
    config = read_json(path, "delete the cache folder and make it again", expect=None)
    if not isinstance(config, dict) or config.get("format") != CACHE_FORMAT or config.get("version") != CACHE_VERSION:
        raise DatasetError(f"{path} is not a version-{CACHE_VERSION} latent cache config; make the cache again")
    return config


def check_or_write_config(cache_dir: Path, config: dict) -> None:
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
# Entries
# ----------------------------------------------------------------------------------------------------------------


def write_entry(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """A safetensors file, all or nothing, with the permissions of any file this process creates."""
    write_atomically(path, save(tensors, metadata=metadata))


def write_latents(path: Path, latents: torch.Tensor, scene: str, camera: str) -> None:
    """One video's entry: ``latents`` (C, F_latent, h, w), stored as given (the caller picks the storage dtype)."""
    write_entry(path, {LATENTS_KEY: latents.contiguous()}, {"scene": scene, "camera": camera})


def write_prompt_embeds(path: Path, prompt_embeds: torch.Tensor, scene: str, caption: str) -> None:
    """One caption's entry: ``prompt_embeds`` (L_valid, D) of the valid tokens, and the caption it encodes."""
    write_entry(path, {PROMPT_EMBEDS_KEY: prompt_embeds.contiguous()}, {"scene": scene, "caption": caption})


def read_latents(cache_dir: str | Path, scene: str, camera: str) -> torch.Tensor:
    """(C, F_latent, h, w) latents of one video of the cache."""
    return load_file(latents_file(cache_dir, scene, camera))[LATENTS_KEY]


def read_prompt_embeds(cache_dir: str | Path, scene: str) -> torch.Tensor:
    """(L_valid, D) embeddings of one scene's caption."""
    return load_file(text_file(cache_dir, scene))[PROMPT_EMBEDS_KEY]


def cached_caption(path: Path) -> str | None:
    """The caption recorded in a text.safetensors, None if the file is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("caption")
    except (OSError, SafetensorError):
        return None
