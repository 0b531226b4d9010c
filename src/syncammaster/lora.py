"""LoRA files for the SynCamMaster transformer: the multi-view layers under their original key names.

diffusers' ``WanLoraLoaderMixin`` (which ``SynCamMasterPipeline`` inherits) loads LoRAs with diffusers/peft keys
(``transformer.blocks.0.mvs_attn.to_q.lora_A.weight``: the MVS layers need nothing more), and converts the original
Wan names (``diffusion_model.blocks.0.self_attn.q.lora_down.weight``) and kohya/musubi's
(``lora_unet_blocks_0_self_attn_q.lora_down.weight``) for the layers Wan has. It refuses any other key, so a LoRA
trained with the released code's names for the MVS layers (``mvs_attn.{q,k,v,o}``, ``projector``, ``cam_encoder``)
would not load: ``split_mvs_lora`` takes those keys out and converts them, and diffusers converts the rest.
"""

from __future__ import annotations

import os
import re

import torch

# An MVS layer's LoRA key in the original Wan naming (``diffusion_model.`` prefix, dots) or kohya/musubi's
# (``lora_unet_`` prefix, underscores): block, layer, and which part of the LoRA it holds.
_ORIGINAL_MVS_KEY = re.compile(
    r"^(?:diffusion_model\.|lora_unet_)blocks[._](?P<block>\d+)[._]"
    r"(?P<layer>mvs_attn[._][qkvo]|projector|cam_encoder)\.(?P<part>lora_down|lora_up|lora_A|lora_B|alpha|\w+)"
    r"(?:\.weight)?$"
)
# The released code's names of the MVS attention's linears -> diffusers' (as for Wan's own attention).
_ATTENTION_LINEARS = {"q": "to_q", "k": "to_k", "v": "to_v", "o": "to_out.0"}


def has_original_mvs_keys(keys) -> bool:
    """Whether a LoRA's keys name MVS layers in the original Wan or kohya/musubi naming."""
    return any(_ORIGINAL_MVS_KEY.match(key) for key in keys)


def lora_file_keys(path: str | os.PathLike) -> list[str]:
    """The tensor names in a LoRA file, read without loading the tensors of a ``.safetensors`` file."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as file:
            return list(file.keys())
    return list(load_lora_file(path))


def load_lora_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A LoRA file's tensors (``.safetensors``, or a torch file read with ``weights_only=True``)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def split_mvs_lora(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Splits a LoRA in the original naming into (the MVS layers in diffusers/peft keys, everything else).

    A layer's ``alpha`` is folded into its down (A) matrix: the LoRA adds ``alpha / rank * up @ down``, and the peft
    layer diffusers builds adds ``B @ A`` at scale 1.
    """
    rest, parts = {}, {}
    for key, tensor in state_dict.items():
        match = _ORIGINAL_MVS_KEY.match(key)
        if match is None:
            rest[key] = tensor
            continue
        if match["part"] not in ("lora_down", "lora_up", "lora_A", "lora_B", "alpha"):
            raise ValueError(f"LoRA key {key} is not supported (only lora_down/lora_up/lora_A/lora_B and alpha)")
        layer = match["layer"]  # mvs_attn.q / mvs_attn_q (the last letter names the linear), projector, cam_encoder
        if layer.startswith("mvs_attn"):
            layer = "mvs_attn." + _ATTENTION_LINEARS[layer[-1]]
        parts.setdefault(f"blocks.{match['block']}.{layer}", {})[match["part"]] = tensor

    converted = {}
    for layer, found in parts.items():
        down = found.get("lora_down", found.get("lora_A"))
        up = found.get("lora_up", found.get("lora_B"))
        if down is None or up is None:
            raise ValueError(f"LoRA for {layer} lacks its {'down' if down is None else 'up'} matrix")
        rank = down.shape[0]
        scale = float(found["alpha"]) / rank if "alpha" in found else 1.0
        converted[f"transformer.{layer}.lora_A.weight"] = down * scale if scale != 1.0 else down
        converted[f"transformer.{layer}.lora_B.weight"] = up
    return converted, rest


# ---------------------------------------------------------------------- the novel-view adapter

# A model folder may hold a LoRA trained for novel views of a given video (stage sync with ``lora_rank``), in
# diffusers' LoRA file format in this subfolder. The pipeline loads it under NOVEL_VIEW_ADAPTER and turns it on only
# for calls with a reference video, so text-to-views runs the model's own weights.
NOVEL_VIEW_LORA_DIR = "novel_view_lora"
NOVEL_VIEW_ADAPTER = "novel_view"
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' name (``save_lora_weights``)

def lora_target_matches(transformer: torch.nn.Module, targets) -> dict[str, list[str]]:
    """For each target name, the linear layers of ``transformer`` it names (peft's rule: the name, or a suffix after
    a dot)."""
    linears = [name for name, module in transformer.named_modules() if isinstance(module, torch.nn.Linear)]
    return {target: [name for name in linears if name == target or name.endswith("." + target)]
            for target in targets}


def add_novel_view_adapter(transformer: torch.nn.Module, rank: int, targets) -> None:
    """Adds a trainable LoRA (rank ``rank``, alpha = rank, so scale 1) named ``NOVEL_VIEW_ADAPTER`` to the linear
    layers named by ``targets`` (training's ``lora_targets``); every other parameter of ``transformer`` is frozen. Its
    up matrices start at zero: the adapted model starts as the model."""
    from peft import LoraConfig

    unmatched = [target for target, names in lora_target_matches(transformer, targets).items() if not names]
    if unmatched:
        raise ValueError(f"lora_targets {unmatched} name no linear layer of the transformer; give layer names or "
                         "their ends after a dot, such as attn1.to_q or projector")
    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                       target_modules=list(targets)), adapter_name=NOVEL_VIEW_ADAPTER)


def has_adapter(transformer: torch.nn.Module | None, name: str = NOVEL_VIEW_ADAPTER) -> bool:
    return transformer is not None and name in (getattr(transformer, "peft_config", None) or {})
