"""Step caches for SynCamMaster sampling (``generate --cache``): diffusers' own cache hooks, named for the command line.

A step cache reuses work between neighbouring denoising steps of one sampling call; it is not the latent cache
(``syncammaster cache``, ``syncammaster.data``), which stores encoded training data. First Block Cache skips every
block after the first when the first block's residual barely changed since the last full step; TaylorSeer runs the
model fully every few steps and extrapolates the outputs of its layers in between; TaylorSeer-Lite extrapolates the
model's output alone, so the steps in between skip the blocks whole; Pyramid Attention Broadcast reuses the output of
an attention layer for a few steps; FasterCache does the same and also approximates the unconditional branch of
classifier-free guidance from the conditional one. The hooks come from ``diffusers.hooks`` unchanged;
``SynCamMasterTransformerBlock`` is registered with diffusers' block registry where the model is defined.

The defaults below (TaylorSeer-Lite: the first 6 steps, then every 8th, run fully; TaylorSeer every 3 steps; First
Block Cache at 0.1) were chosen by ``benchmarks/step_caches.py`` on the shipped model at the default generate: the
work each skips, its speed and its PSNR to the uncached videos are in benchmarks/RESULTS.md, section "Step caches".
TaylorSeer-Lite is the recommended one: TaylorSeer's steps in between still run what it does not extrapolate (norms,
modulation, the multi-view regrouping), which costs a small model a large share of a step.

``SynCamMasterTransformer3DModel.enable_cache`` takes any of diffusers' cache configs; ``step_cache_config`` builds
one from a command-line name. Each method has one knob, ``--cache-threshold`` on the command line
(``StepCacheMethod.knob`` says what it means). This module imports torch and diffusers only when a config is built,
so the command line can list the methods cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Attention layers of a SynCamMaster block whose outputs the attention caches reuse: self-attention within each view
# and the multi-view attention across views. Cross-attention to the text is left to run.
SELF_ATTENTION_LAYERS = (r"blocks\.\d+\.attn1$", r"blocks\.\d+\.mvs_attn$")
# Layers whose outputs TaylorSeer extrapolates: every attention and feed-forward output of every block.
TAYLORSEER_LAYERS = [r"blocks\.\d+\.(attn1|mvs_attn|attn2|ffn)"]
# TaylorSeer-Lite runs this many first steps fully: the early steps set the scene's layout, and extrapolating from
# them costs more fidelity than the same number of full steps spent later (RESULTS.md, "Step caches").
TAYLORSEER_LITE_FULL_FIRST_STEPS = 6


@dataclass(frozen=True)
class StepCacheMethod:
    """One step cache as the command line offers it: what its knob means, its default, how to build the config."""

    summary: str
    knob: str
    default: float
    build: Callable[[float, Callable[[], float]], Any]  # (knob value, current timestep) -> diffusers config


def _whole_number(value: float, method: str) -> int:
    if value != int(value) or value < 1:
        raise ValueError(f"--cache-threshold for {method} is a whole number of steps >= 1, got {value:g}")
    return int(value)


def _first_block(threshold: float, current_timestep: Callable[[], float]):
    from diffusers.hooks import FirstBlockCacheConfig

    return FirstBlockCacheConfig(threshold=threshold)


def _taylorseer(interval: float, current_timestep: Callable[[], float]):
    import torch
    from diffusers.hooks import TaylorSeerCacheConfig

    return TaylorSeerCacheConfig(
        cache_interval=_whole_number(interval, "taylorseer"),
        disable_cache_before_step=3,
        max_order=1,
        taylor_factors_dtype=torch.float32,
        cache_identifiers=TAYLORSEER_LAYERS,
    )


def _taylorseer_lite(interval: float, current_timestep: Callable[[], float]):
    import torch
    from diffusers.hooks import TaylorSeerCacheConfig

    return TaylorSeerCacheConfig(
        cache_interval=_whole_number(interval, "taylorseer-lite"),
        disable_cache_before_step=TAYLORSEER_LITE_FULL_FIRST_STEPS,
        max_order=1,
        taylor_factors_dtype=torch.float32,
        use_lite_mode=True,  # extrapolate the output projection; the blocks return nothing in between
    )


def _pyramid_attention(skip_range: float, current_timestep: Callable[[], float]):
    from diffusers.hooks import PyramidAttentionBroadcastConfig

    return PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=_whole_number(skip_range, "pyramid-attention"),
        spatial_attention_timestep_skip_range=(100, 800),
        spatial_attention_block_identifiers=SELF_ATTENTION_LAYERS,
        current_timestep_callback=current_timestep,
    )


def _faster(skip_range: float, current_timestep: Callable[[], float]):
    from diffusers.hooks import FasterCacheConfig

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


STEP_CACHE_METHODS: dict[str, StepCacheMethod] = {
    "first-block": StepCacheMethod(
        "skip all blocks after the first while its residual changes little (First Block Cache)",
        "relative change of the first block's residual below which the rest is reused",
        0.1,
        _first_block,
    ),
    "taylorseer": StepCacheMethod(
        "run fully every N steps, extrapolate each layer's output in between (TaylorSeer, first order)",
        "steps between full computations",
        3,
        _taylorseer,
    ),
    "taylorseer-lite": StepCacheMethod(
        f"run the first {TAYLORSEER_LITE_FULL_FIRST_STEPS} steps and then every N-th fully, extrapolate the model's "
        "output in between, skipping the blocks whole (TaylorSeer-Lite, first order)",
        "steps between full computations",
        8,
        _taylorseer_lite,
    ),
    "pyramid-attention": StepCacheMethod(
        "reuse self- and multi-view attention outputs for N steps at mid-range timesteps (Pyramid Attention Broadcast)",
        "steps an attention output is reused",
        2,
        _pyramid_attention,
    ),
    "faster": StepCacheMethod(
        "reuse attention outputs and approximate the unconditional branch from the conditional one (FasterCache)",
        "steps an attention output is reused",
        2,
        _faster,
    ),
}


def step_cache_config(name: str, threshold: float | None, current_timestep: Callable[[], float]):
    """diffusers' config for the step cache ``name`` (a key of ``STEP_CACHE_METHODS``), for
    ``transformer.enable_cache``.

    ``threshold`` is the method's knob (``STEP_CACHE_METHODS[name].knob``), ``None`` for its default;
    ``current_timestep`` returns the timestep of the forward running now (``transformer.current_timestep``).
    """
    if name not in STEP_CACHE_METHODS:
        raise ValueError(f"unknown cache {name!r}; choose one of {', '.join(STEP_CACHE_METHODS)}")
    method = STEP_CACHE_METHODS[name]
    value = method.default if threshold is None else float(threshold)
    if not value > 0:
        raise ValueError(f"--cache-threshold must be > 0, got {value:g}")
    return method.build(value, current_timestep)
