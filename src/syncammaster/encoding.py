"""The pixel, latent and text contract every part shares: how frames become the VAE's input, how VAE latents are
normalised (and back), and how captions become padded UMT5 embeddings.

The pipeline (generation and novel views), the latent cache, training and the tests all go through these functions,
so a generated video, a cached training latent and a test's expectation are computed one way. A leaf module: it
imports only torch, numpy and diffusers.

- Frames: (T, h, w, 3) uint8 -> :func:`resize_and_crop` -> (T, 3, H, W) float32 in [-1, 1].
- Latents: ``(mu - latents_mean) / latents_std`` per channel (:func:`encode_videos`, :func:`decode_latents`), with
  the statistics of the VAE's config (:func:`latent_statistics`).
- Text: :func:`encode_captions` (the valid tokens of each caption) and :func:`pad_prompt_embeds` (zeros after them,
  as diffusers' Wan pipeline pads).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.pipelines.wan.pipeline_wan import prompt_clean
from diffusers.utils.torch_utils import get_module_execution_device

# Frames resized at once: bounds the memory of the uint8 -> float conversion of a long clip.
RESIZE_CHUNK_FRAMES = 8


def latent_statistics(vae, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE config's per-channel latent mean and std, each (1, C, 1, 1, 1) on ``device`` in ``dtype``."""
    z_dim = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, z_dim, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, z_dim, 1, 1, 1)
    return mean.to(device, dtype), std.to(device, dtype)


def resize_and_crop(frames: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Scale RGB frames so (height, width) fits inside, centre-crop to it, and map [0, 255] to [-1, 1].

    The release's rule: scale = max(width / w, height / h), the scaled size rounded to whole pixels, then a centre
    crop whose offset is rounded as torchvision's ``CenterCrop`` rounds it. Scaling is antialiased bilinear on uint8
    frames: within one grey level of the PIL ``BILINEAR`` resize that the release applies, and several times faster
    than resizing in float.

    Args:
        frames: (T, h, w, 3) uint8.

    Returns:
        (T, 3, height, width) float32 in [-1, 1].
    """
    num_frames, source_height, source_width, _ = frames.shape
    scale = max(width / source_width, height / source_height)
    scaled_height, scaled_width = round(source_height * scale), round(source_width * scale)
    top = int(round((scaled_height - height) / 2.0))
    left = int(round((scaled_width - width) / 2.0))
    out = torch.empty(num_frames, 3, height, width)  # (T, 3, H, W)
    for start in range(0, num_frames, RESIZE_CHUNK_FRAMES):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + RESIZE_CHUNK_FRAMES]))  # (t, h, w, 3)
        chunk = chunk.permute(0, 3, 1, 2)  # (t, 3, h, w) uint8, channels-last in memory (the fast uint8 kernel)
        if (scaled_height, scaled_width) != (source_height, source_width):
            chunk = F.interpolate(
                chunk, size=(scaled_height, scaled_width), mode="bilinear", antialias=True, align_corners=False
            )  # (t, 3, h', w') uint8
        out[start : start + RESIZE_CHUNK_FRAMES] = chunk[:, :, top : top + height, left : left + width].float()
    return out / 127.5 - 1.0


@torch.no_grad()
def encode_videos(vae, videos: torch.Tensor) -> torch.Tensor:
    """Normalised VAE posterior means of videos in [-1, 1].

    Args:
        vae: ``AutoencoderKLWan`` (its tiling / slicing settings apply).
        videos: (B, 3, T, H, W).

    Returns:
        (B, C, F_latent, H / s, W / s) float32 on the CPU: ``(mu - latents_mean) / latents_std``.
    """
    device = get_module_execution_device(vae)
    mu = vae.encode(videos.to(device, vae.dtype)).latent_dist.mean.float().cpu()  # (B, C, F, h, w)
    mean, std = latent_statistics(vae, mu.device, mu.dtype)
    return (mu - mean) / std


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`encode_videos`: normalised latents (N, C, F, h, w) -> videos (N, 3, T, H, W) in [-1, 1],
    float32 on the CPU, all N in one VAE call on the VAE's device and dtype (model offload hooks honoured)."""
    device = get_module_execution_device(vae)
    mean, std = latent_statistics(vae, device, vae.dtype)
    latents = latents.to(device, vae.dtype) * std + mean
    return vae.decode(latents, return_dict=False)[0].float().cpu()


@torch.no_grad()
def encode_captions(tokenizer, text_encoder, captions: Sequence[str], max_sequence_length: int) -> list[torch.Tensor]:
    """UMT5 embeddings of the valid tokens of each caption, as diffusers' Wan pipeline computes them before padding.

    Captions are cleaned with diffusers' ``prompt_clean``, tokenized to at most ``max_sequence_length`` tokens
    (padded to it, with the attention mask hiding the padding) and encoded.

    Returns:
        one (L_valid, text_dim) float32 CPU tensor per caption.
    """
    inputs = tokenizer(
        [prompt_clean(caption) for caption in captions],
        padding="max_length",
        max_length=max_sequence_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    lengths = inputs.attention_mask.gt(0).sum(dim=1).tolist()  # B x valid tokens
    device = get_module_execution_device(text_encoder)
    hidden = text_encoder(inputs.input_ids.to(device), inputs.attention_mask.to(device)).last_hidden_state  # (B, L, D)
    hidden = hidden.float().cpu()
    return [hidden[b, :length].clone() for b, length in enumerate(lengths)]


def pad_prompt_embeds(prompt_embeds: torch.Tensor, max_sequence_length: int) -> torch.Tensor:
    """(L_valid, D) -> (max_sequence_length, D), zeros after the valid tokens (as diffusers' Wan pipeline pads)."""
    length, dim = prompt_embeds.shape
    if length > max_sequence_length:
        raise ValueError(f"a cached caption has {length} tokens, more than max_sequence_length={max_sequence_length}")
    return torch.cat([prompt_embeds, prompt_embeds.new_zeros(max_sequence_length - length, dim)])
