"""Learned quality metrics with a CLIP model from a local folder (transformers' ``CLIPModel``).

- CLIP-T: text-frame agreement, 100 x the cosine similarity of the prompt's and each frame's embedding, averaged
  over views and the sampled frames.
- CLIP-F: frame-to-frame consistency, 100 x the cosine similarity of consecutive frames' embeddings, averaged over
  every consecutive pair of every view.
- CLIP-V: view-to-view consistency, 100 x the cosine similarity of two views' embeddings at the same time step,
  averaged over view pairs and the sampled frames.

The folder is what ``CLIPModel.save_pretrained`` and ``CLIPProcessor.save_pretrained`` write (for example a local
copy of openai/clip-vit-base-patch32): config.json, model weights, the tokenizer and preprocessor_config.json.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .local import load_local

CLIP_BATCH = 32  # frames per CLIP forward


class ClipError(ValueError):
    """CLIP weights that are missing or unusable."""


class ClipScorer:
    """A CLIP model, its tokenizer and its image processor, loaded from ``model_dir`` without any download."""

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        def load(folder: Path):
            return (
                CLIPModel.from_pretrained(folder, local_files_only=True).to(device).eval(),
                AutoTokenizer.from_pretrained(folder, local_files_only=True),
                CLIPImageProcessor.from_pretrained(folder, local_files_only=True),
            )

        fix = "pass --clip DIR, a local folder saved by CLIPModel/CLIPProcessor.save_pretrained"
        self.model, self.tokenizer, self.processor = load_local(model_dir, load, ClipError, "CLIP", fix)
        self.device = device

    @staticmethod
    def _unit(features) -> torch.Tensor:
        # transformers 5 returns a model output whose pooler_output is the projected embedding; 4.x a tensor.
        embedding = features if isinstance(features, torch.Tensor) else features.pooler_output
        return torch.nn.functional.normalize(embedding.float(), dim=-1)

    @torch.no_grad()
    def image_embeddings(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 frames -> (N, D) unit embeddings."""
        out = []
        for start in range(0, len(frames), CLIP_BATCH):
            pixels = self.processor(images=list(frames[start : start + CLIP_BATCH]), return_tensors="pt")
            out.append(self._unit(self.model.get_image_features(pixel_values=pixels.pixel_values.to(self.device))))
        return torch.cat(out)

    @torch.no_grad()
    def text_embedding(self, text: str) -> torch.Tensor:
        """(D,) unit embedding of ``text`` (truncated to the model's context)."""
        max_length = self.model.config.text_config.max_position_embeddings
        tokens = self.tokenizer([text], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        return self._unit(self.model.get_text_features(**tokens))[0]

    def scores(self, videos: Sequence[np.ndarray], prompt: str | None, sampled_frames: Sequence[int]) -> dict:
        """CLIP-T (None without a prompt), CLIP-F and CLIP-V of V videos (T, H, W, 3) (module docstring)."""
        embeddings = [self.image_embeddings(video) for video in videos]  # V x (T, D)
        clip_f = [100 * (e[1:] * e[:-1]).sum(-1).clamp(min=0).mean().item() for e in embeddings if len(e) > 1]
        sampled = [e[list(sampled_frames)] for e in embeddings]  # V x (S, D)
        clip_v = [100 * (x * y).sum(-1).clamp(min=0).mean().item() for x, y in itertools.combinations(sampled, 2)]
        clip_t = None
        if prompt:
            text = self.text_embedding(prompt)
            clip_t = float(np.mean([100 * (e @ text).clamp(min=0).mean().item() for e in sampled]))
        return {
            "clip_t": clip_t,
            "clip_f": float(np.mean(clip_f)) if clip_f else None,
            "clip_v": float(np.mean(clip_v)) if clip_v else None,
        }
