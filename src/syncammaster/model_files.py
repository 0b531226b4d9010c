"""Checks of model files before diffusers, transformers or torch load them: each problem becomes one line that names it
and the fix.

Left to themselves the loaders report a broken folder in their own words (an OSError about a config file, a
safetensors header error, a list of every component a pipeline expects) or not at all (a folder of another pipeline
loads and fails later). The checks read only small files: JSON configs and the headers of the weight files.

- ``check_model_folder``: a SynCamMaster pipeline folder (``SynCamMasterPipeline.from_pretrained``, ``generate
  --model``);
- ``check_wan_folder``: a Wan2.1 text-to-video diffusers folder (``SynCamMasterPipeline.from_wan``, ``--wan``);
- ``check_components``: some component subfolders of either (training and caching read tokenizer/, text_encoder/,
  vae/);
- ``check_checkpoint_file``: a released-format checkpoint (``--checkpoint``, ``convert``);
- ``video_defaults``: the video a model generates when a call names none, read before anything heavy is imported
  (so that ``generate`` checks a given video against it before the model loads).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .jsonfile import read_json
from .video import DEFAULT_FPS

MODEL_INDEX = "model_index.json"
PIPELINE_CLASS = "SynCamMasterPipeline"
TRANSFORMER_CLASS = "SynCamMasterTransformer3DModel"
WAN_PIPELINE_CLASS = "WanPipeline"
PIPELINE_COMPONENTS = ("tokenizer", "text_encoder", "transformer", "vae", "scheduler")
WAN_COMPONENTS = ("tokenizer", "text_encoder", "vae")  # the transformer comes from the checkpoint

# Per component: its config file and the stem of its weight files (None: a component without weights).
COMPONENT_FILES: dict[str, tuple[str, str | None]] = {
    "tokenizer": ("tokenizer_config.json", None),
    "text_encoder": ("config.json", "model"),
    "transformer": ("config.json", "diffusion_pytorch_model"),
    "vae": ("config.json", "diffusion_pytorch_model"),
    "scheduler": ("scheduler_config.json", None),
}
TOKENIZER_VOCABULARIES = ("tokenizer.json", "spiece.model")  # a fast tokenizer's file, or UMT5's SentencePiece model
PICKLE_PROTOCOL_2 = b"\x80"  # the first byte of a pre-zip torch.save file (a pickle, protocol >= 2)

# The video size SynCamMaster was trained and is run at.
RELEASE_HEIGHT, RELEASE_WIDTH, RELEASE_NUM_FRAMES = 480, 832, 81

SAVE_AGAIN = "save it again (save_pretrained) or copy it anew"
MODEL_FIX = "pass a SynCamMaster model folder (with model_index.json)"


class ModelFilesError(ValueError):
    """A model folder or checkpoint that cannot be loaded; the message names the problem and the fix."""


# ---------------------------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------------------------


def check_model_folder(folder: str | Path) -> Path:
    """Checks a SynCamMaster pipeline folder: its model index, every component's config and the weight files.

    Returns the folder as a Path; raises ``ModelFilesError`` (one line) at the first problem.
    """
    folder = _existing_folder(folder, MODEL_FIX)
    index_file = folder / MODEL_INDEX
    if not index_file.is_file():
        config = folder / "config.json"
        if config.is_file() and _class_name(read_json_object(config)) == TRANSFORMER_CLASS:
            raise ModelFilesError(
                f"{folder} holds a SynCamMaster transformer alone, not a whole model; {MODEL_FIX}, or use the "
                "transformer with SynCamMasterTransformer3DModel.from_pretrained"
            )
        raise ModelFilesError(f"{folder} is not a SynCamMaster model folder (no {MODEL_INDEX}); {MODEL_FIX}")
    index = read_json_object(index_file)
    class_name = _class_name(index)
    if class_name == WAN_PIPELINE_CLASS:
        raise ModelFilesError(
            f"{folder} is a Wan2.1 folder, not a SynCamMaster model; give it as --wan {folder} with --checkpoint "
            "(the released step20000.ckpt)"
        )
    if class_name != PIPELINE_CLASS:
        raise ModelFilesError(
            f"{folder} holds a {class_name or 'model without a class name'}, not a {PIPELINE_CLASS}; {MODEL_FIX}"
        )
    for name in PIPELINE_COMPONENTS:
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)):
            raise ModelFilesError(f"{index_file} names no {name} component; the folder is damaged: {SAVE_AGAIN}")
        if name == "transformer" and entry[1] != TRANSFORMER_CLASS:
            raise ModelFilesError(
                f"{folder} has a {entry[1]} transformer, not a {TRANSFORMER_CLASS}; {MODEL_FIX}"
            )
    check_components(folder, PIPELINE_COMPONENTS, index)
    return folder


def video_defaults(folder: str | Path | None) -> dict[str, float]:
    """The video a model generates when a call names none: ``num_frames``, ``height``, ``width`` and ``fps`` (its
    training frame rate), from a checked SynCamMaster folder's ``model_index.json`` (the pipeline config); the
    released model's for ``None`` (a Wan folder with the released checkpoint) and for keys a folder lacks.
    """
    defaults = {"num_frames": RELEASE_NUM_FRAMES, "height": RELEASE_HEIGHT, "width": RELEASE_WIDTH, "fps": DEFAULT_FPS}
    if folder is None:
        return defaults
    index = read_json_object(check_model_folder(folder) / MODEL_INDEX)
    for name in defaults:
        value = index.get(f"default_{name}", defaults[name])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ModelFilesError(f"{folder}/{MODEL_INDEX} has default_{name}={value!r}, not a positive number; "
                                  f"the folder is damaged: {SAVE_AGAIN}")
        defaults[name] = value
    return defaults


def check_wan_folder(folder: str | Path, with_transformer: bool = False) -> Path:
    """Checks a Wan2.1 text-to-video diffusers folder: tokenizer, text encoder, VAE (and transformer if asked).

    Returns the folder as a Path; raises ``ModelFilesError`` (one line) at the first problem.
    """
    fix = "download Wan-AI/Wan2.1-T2V-1.3B-Diffusers (or -14B-Diffusers) and pass its folder"
    folder = _existing_folder(folder, fix)
    index_file = folder / MODEL_INDEX
    index = read_json_object(index_file) if index_file.is_file() else {}
    class_name = _class_name(index)
    if class_name == PIPELINE_CLASS:
        raise ModelFilesError(f"{folder} is a SynCamMaster model folder, not a Wan2.1 one; give it as --model {folder}")
    if index and class_name != WAN_PIPELINE_CLASS:
        raise ModelFilesError(
            f"{folder} holds a {class_name or 'model without a class name'}, not a Wan2.1 text-to-video "
            f"{WAN_PIPELINE_CLASS}; {fix}"
        )
    names = (*WAN_COMPONENTS, "transformer") if with_transformer else WAN_COMPONENTS
    absent = [name for name in names if not (folder / name).is_dir()]
    if absent:
        raise ModelFilesError(f"{folder} is not a Wan2.1 diffusers folder (no {', '.join(absent)}/); {fix}")
    check_components(folder, names, index)
    return folder


def check_components(folder: str | Path, names: Iterable[str], index: dict | None = None) -> None:
    """Checks the component subfolders ``names`` of ``folder``: present, a readable config, intact weights.

    ``index``: the folder's model index, if it has one; a diffusers model's config must name the class it lists.
    """
    folder = Path(folder)
    for name in names:
        subfolder = folder / name
        if not subfolder.is_dir():
            raise ModelFilesError(f"{folder} lacks its {name}/ folder; the model is incomplete: {SAVE_AGAIN}")
        config_name, weights_stem = COMPONENT_FILES[name]
        config_file = subfolder / config_name
        if not config_file.is_file():
            raise ModelFilesError(f"{subfolder} lacks {config_name}; the model is incomplete: {SAVE_AGAIN}")
        config = read_json_object(config_file)
        listed = (index or {}).get(name)
        found = config.get("_class_name")
        if isinstance(listed, list) and len(listed) == 2 and isinstance(found, str) and found != listed[1]:
            raise ModelFilesError(
                f"{config_file} describes a {found} but {folder / MODEL_INDEX} lists a {listed[1]}; the folder mixes "
                f"two models: {SAVE_AGAIN}"
            )
        if name == "tokenizer" and not any((subfolder / f).is_file() for f in TOKENIZER_VOCABULARIES):
            raise ModelFilesError(
                f"{subfolder} lacks its vocabulary ({' or '.join(TOKENIZER_VOCABULARIES)}); the model is incomplete: "
                f"{SAVE_AGAIN}"
            )
        if weights_stem is not None:
            for weights in _weight_files(subfolder, weights_stem):
                check_weights_file(weights)


def _existing_folder(folder: str | Path, fix: str) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise ModelFilesError(f"model folder {folder} does not exist; {fix}")
    if not folder.is_dir():
        checkpoint = folder.suffix in (".ckpt", ".pt", ".pth", ".safetensors")
        hint = " (a checkpoint goes with --checkpoint)" if checkpoint else ""
        raise ModelFilesError(f"{folder} is a file, not a model folder{hint}; {fix}")
    return folder


def read_json_object(path: Path) -> dict:
    """The JSON object of a model's config file; ``JSONFileError`` (one line) if it is unreadable, not JSON or not an
    object."""
    return read_json(path, SAVE_AGAIN)


def _class_name(config: dict) -> str | None:
    name = config.get("_class_name")
    return name if isinstance(name, str) else None


def _weight_files(subfolder: Path, stem: str) -> list[Path]:
    """The weight files of one component: the shards a ``.index.json`` lists, else the files named ``stem``."""
    for index_name in (f"{stem}.safetensors.index.json", f"{stem}.bin.index.json"):
        index_file = subfolder / index_name
        if index_file.is_file():
            weight_map = read_json_object(index_file).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ModelFilesError(f"{index_file} lists no weight shards; {SAVE_AGAIN}")
            shards = [subfolder / shard for shard in sorted(set(weight_map.values()))]
            missing = [shard.name for shard in shards if not shard.is_file()]
            if missing:
                raise ModelFilesError(f"{subfolder} lacks weight shards {', '.join(missing[:3])}; {SAVE_AGAIN}")
            return shards
    # Single files, also with a precision variant (``diffusion_pytorch_model.fp16.safetensors``).
    files = sorted(p for pattern in (f"{stem}*.safetensors", f"{stem}*.bin") for p in subfolder.glob(pattern))
    if not files:
        raise ModelFilesError(f"{subfolder} has no weights ({stem}.safetensors); the model is incomplete: {SAVE_AGAIN}")
    return files


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------


def check_weights_file(path: str | Path, fix: str = SAVE_AGAIN) -> None:
    """Checks that a weight file is whole: a safetensors header that covers the file, or an intact torch zip archive
    (or a pickle, the format before it). Reads the header only; ``fix`` ends the message of a ``ModelFilesError``."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ModelFilesError(f"{path} is empty; {fix}")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            reason = first_sentence(error)
            raise ModelFilesError(f"{path} is cut short or damaged (safetensors: {reason}); {fix}") from None
        return
    with path.open("rb") as handle:
        first = handle.read(1)
    if not zipfile.is_zipfile(path) and first != PICKLE_PROTOCOL_2:
        raise ModelFilesError(f"{path} is cut short or not a weights file (no PyTorch zip archive or pickle); {fix}")


def check_checkpoint_file(path: str | Path) -> Path:
    """Checks a released-format checkpoint file (``step20000.ckpt``, or a ``.safetensors`` state dict) before
    loading: it exists, is a file and is whole. Returns it as a Path."""
    path = Path(path)
    fix = "pass the released SynCamMaster checkpoint file (step20000.ckpt)"
    if not path.exists():
        raise ModelFilesError(f"checkpoint file not found: {path}; {fix}")
    if path.is_dir():
        if (path / MODEL_INDEX).is_file():
            raise ModelFilesError(f"{path} is a model folder, not a checkpoint; give it as --model {path}")
        raise ModelFilesError(f"{path} is a folder, not a checkpoint file; {fix}")
    check_weights_file(path, fix)
    return path


def first_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.split(". ")[0].rstrip(".")
