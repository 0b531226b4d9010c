"""Step-skipping caches for SynCamMaster sampling: diffusers' own cache hooks, named for the command line.

diffusers' caches reuse work between neighbouring denoising steps: First Block Cache skips every block after the
first when the first block's residual barely changed since the last full step; TaylorSeer runs the model fully every
few steps and extrapolates the outputs of its layers in between; Pyramid Attention Broadcast reuses the output of an
attention layer for a few steps; FasterCache does the same and also approximates the unconditional branch of
classifier-free guidance from the conditional one. The hooks come from ``diffusers.hooks`` unchanged;
``SynCamMasterTransformerBlock`` is registered with diffusers' block registry where the model is defined.

diffusers' hooks keep their state per named "cache context" and some read the current timestep. SynCamMaster batches
the unconditional and conditional passes into one forward, so one context covers both: ``DenoiseStepHook``, a hook on
the transformer, opens it for every forward and records the forward's timestep for the hooks that read it.

``SynCamMasterTransformer3DModel.enable_cache`` installs that hook with any diffusers cache config; ``cache_config``
builds one from a command-line name. Each method has one knob, ``--cache-threshold`` on the command line
(``CacheMethod.knob`` says what it means).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers.hooks import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    ModelHook,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)
from diffusers.hooks.hooks import CacheContext, _set_cache_context

# The name of the one cache context the hooks keep their state under (conditional and unconditional run batched).
DENOISE_CONTEXT = "denoise"
DENOISE_STEP_HOOK = "syncammaster_denoise_step"
# Attention layers of a SynCamMaster block whose outputs the attention caches reuse: self-attention within each view
# and the multi-view attention across views. Cross-attention to the text is left to run.
SELF_ATTENTION_LAYERS = (r"blocks\.\d+\.attn1$", r"blocks\.\d+\.mvs_attn$")
# Layers whose outputs TaylorSeer extrapolates: every attention and feed-forward output of every block.
TAYLORSEER_LAYERS = [r"blocks\.\d+\.(attn1|mvs_attn|attn2|ffn)"]


class DenoiseStepHook(ModelHook):
    """Opens the cache context for each forward of the transformer and records its timestep.

    Stateful, so that diffusers' ``_reset_stateful_cache`` (run by the pipeline after each call) also clears the
    recorded timestep.
    """

    _is_stateful = True

    def __init__(self) -> None:
        super().__init__()
        self.timestep: float = float("inf")

    def new_forward(self, module: torch.nn.Module, *args, **kwargs):
        timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        # Views may carry different timesteps (a clean reference view): the noisiest one says where sampling is.
        self.timestep = float(torch.as_tensor(timestep).max())
        _set_cache_context(module, CacheContext(DENOISE_CONTEXT, timestep=self.timestep))
        try:
            return self.fn_ref.original_forward(*args, **kwargs)
        finally:
            _set_cache_context(module, None)

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.timestep = float("inf")
        return module


@dataclass(frozen=True)
class CacheMethod:
    """One cache as the command line offers it: what its knob means, the knob's default, how to build the config."""

    summary: str
    knob: str
    default: float
    build: Callable[[float, Callable[[], float]], Any]  # (knob value, current timestep) -> diffusers config
    integer_knob: bool = False


def _whole_number(value: float, method: str) -> int:
    if value != int(value) or value < 1:
        raise ValueError(f"--cache-threshold for {method} is a whole number of steps >= 1, got {value:g}")
    return int(value)


def _first_block(threshold: float, current_timestep: Callable[[], float]) -> FirstBlockCacheConfig:
    return FirstBlockCacheConfig(threshold=threshold)


def _taylorseer(interval: float, current_timestep: Callable[[], float]) -> TaylorSeerCacheConfig:
    return TaylorSeerCacheConfig(
        cache_interval=_whole_number(interval, "taylorseer"),
        disable_cache_before_step=3,
        max_order=1,
        taylor_factors_dtype=torch.float32,
        cache_identifiers=TAYLORSEER_LAYERS,
    )


def _pyramid_attention(skip_range: float, current_timestep: Callable[[], float]) -> PyramidAttentionBroadcastConfig:
    return PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=_whole_number(skip_range, "pyramid-attention"),
        spatial_attention_timestep_skip_range=(100, 800),
        spatial_attention_block_identifiers=SELF_ATTENTION_LAYERS,
        current_timestep_callback=current_timestep,
    )


def _faster(skip_range: float, current_timestep: Callable[[], float]) -> FasterCacheConfig:
    return FasterCacheConfig(
        spatial_attention_block_skip_range=_whole_number(skip_range, "faster"),
        spatial_attention_timestep_skip_range=(-1, 681),
        spatial_attention_block_identifiers=SELF_ATTENTION_LAYERS,
        # The pipeline's guidance batch is [unconditional, conditional]; the camera embedding is batched with it.
        _unconditional_conditional_input_kwargs_identifiers=[
            "hidden_states",
            "encoder_hidden_states",
            "timestep",
            "camera_embedding",
        ],
        current_timestep_callback=current_timestep,
        attention_weight_callback=lambda _: 0.5,
        tensor_format="BCFHW",
    )


CACHE_METHODS: dict[str, CacheMethod] = {
    "first-block": CacheMethod(
        "skip all blocks after the first while its residual changes little (First Block Cache)",
        "relative change of the first block's residual below which the rest is reused",
        0.1,
        _first_block,
    ),
    "taylorseer": CacheMethod(
        "run fully every N steps, extrapolate each layer's output in between (TaylorSeer, first order)",
        "steps between full computations",
        3,
        _taylorseer,
        integer_knob=True,
    ),
    "pyramid-attention": CacheMethod(
        "reuse self- and multi-view attention outputs for N steps at mid-range timesteps (Pyramid Attention Broadcast)",
        "steps an attention output is reused",
        2,
        _pyramid_attention,
        integer_knob=True,
    ),
    "faster": CacheMethod(
        "reuse attention outputs and approximate the unconditional branch from the conditional one (FasterCache)",
        "steps an attention output is reused",
        2,
        _faster,
        integer_knob=True,
    ),
}


def cache_config(name: str, threshold: float | None, current_timestep: Callable[[], float]):
    """diffusers' config for the cache ``name`` (a key of ``CACHE_METHODS``), for ``transformer.enable_cache``.

    ``threshold`` is the method's knob (``CACHE_METHODS[name].knob``), ``None`` for its default;
    ``current_timestep`` returns the timestep of the forward running now (``transformer.current_timestep``).
    """
    if name not in CACHE_METHODS:
        raise ValueError(f"unknown cache {name!r}; choose one of {', '.join(CACHE_METHODS)}")
    method = CACHE_METHODS[name]
    value = method.default if threshold is None else float(threshold)
    if not value > 0:
        raise ValueError(f"--cache-threshold must be > 0, got {value:g}")
    return method.build(value, current_timestep)
