"""FVD-V: the Frechet video distance across views, with a video feature network the user has locally.

FVD (Unterthiner et al. 2019) fits a Gaussian to the features a video network (I3D trained on Kinetics-400) gives two
sets of clips and reports the Frechet distance between the two Gaussians. FVD-V, as SV4D (Xie et al. 2024) defines it
and SynCamMaster reports it, runs the clips across views: the V views of a scene at one time
step, in the rig's order, make one clip. The evaluated scenes are compared with reference scenes
(``--fvd-reference``: for example the ground truth of the same prompts and cameras); every sampled time step of every
scene gives one clip. Lower is better, 0 for two identical sets.

The network is a TorchScript module saved by ``torch.jit.save``, given as the file or as a folder holding exactly one
``*.pt`` file: the I3D that FVD implementations share (``i3d_torchscript.pt``, whose forward takes ``rescale``,
``resize`` and ``return_features``; it is called with the first two off and features on) or any module mapping
(N, 3, T, 224, 224) clips in [-1, 1] to (N, D) features. Frames are resized to 224x224 (bilinear), and each view is
held for the same number of frames, at least ``MIN_CLIP_FRAMES`` frames in all, since I3D pools over time and needs
about ten.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

CLIP_SIDE = 224  # the frame size I3D was trained on
MIN_CLIP_FRAMES = 16  # FVD's usual clip length
FVD_BATCH = 8  # clips per forward
I3D_KWARGS = {"rescale": False, "resize": False, "return_features": True}  # the shared I3D: our [-1, 1] 224 clips in


class FvdError(ValueError):
    """A video network or reference set that FVD-V cannot use."""


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to (N, D) and (M, D) features:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    tr (S_a S_b)^(1/2) is computed as the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a
    symmetric matrix with the same eigenvalues, so it stays real for the rank-deficient covariances of a few clips.
    """
    features_a, features_b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    for name, features in (("evaluated", features_a), ("reference", features_b)):
        if features.ndim != 2 or len(features) < 2:
            raise FvdError(f"FVD-V needs at least 2 clips of features per set; the {name} set has {len(features)}")
    cov_a = np.atleast_2d(np.cov(features_a, rowvar=False))  # (D, D)
    cov_b = np.atleast_2d(np.cov(features_b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    sqrt_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T  # (D, D) symmetric S_a^(1/2)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a), 0.0, None)).sum()
    mean = np.sum((features_a.mean(0) - features_b.mean(0)) ** 2)
    return float(max(mean + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross, 0.0))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _network_file(path: Path) -> Path:
    fix = "give --fvd a TorchScript video network (a .pt file saved by torch.jit.save, or a folder holding one)"
    if path.is_dir():
        found = sorted(path.glob("*.pt"))
        if len(found) != 1:
            raise FvdError(f"--fvd folder {path} holds {len(found)} .pt files, not one; {fix}")
        return found[0]
    if not path.is_file():
        raise FvdError(f"--fvd {path} does not exist; {fix}")
    return path


class FvdScorer:
    """A TorchScript video network from a local file or folder (module docstring), and FVD-V with it."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        file = _network_file(Path(path))
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript, but FVD's I3D is shared in that format
                warnings.simplefilter("ignore", DeprecationWarning)
                self.network = torch.jit.load(str(file), map_location=device).eval()
        except (RuntimeError, ValueError, OSError) as e:
            raise FvdError(f"cannot load {file} as a TorchScript module ({_first_line(e)}); save the network with "
                           "torch.jit.save") from None
        arguments = {argument.name for argument in self.network.forward.schema.arguments}
        self.kwargs = {k: v for k, v in I3D_KWARGS.items() if k in arguments}
        self.device, self.name = device, file.name

    @staticmethod
    def clips(videos: Sequence[np.ndarray], frames: Sequence[int]) -> torch.Tensor:
        """One clip across the V views (T, H, W, 3) uint8 per time step in ``frames``: (len(frames), 3, L, 224, 224)
        float in [-1, 1], each view held for L / V frames, L >= ``MIN_CLIP_FRAMES``."""
        hold = math.ceil(MIN_CLIP_FRAMES / len(videos))
        across = np.stack([video[list(frames)] for video in videos], axis=1)  # (S, V, H, W, 3)
        clips = torch.from_numpy(across).float().div(127.5).sub(1.0)  # (S, V, H, W, 3) in [-1, 1]
        S, V, H, W, _ = clips.shape
        clips = clips.permute(0, 1, 4, 2, 3).reshape(S * V, 3, H, W)  # (S V, 3, H, W)
        clips = torch.nn.functional.interpolate(clips, size=(CLIP_SIDE, CLIP_SIDE), mode="bilinear",
                                                align_corners=False)
        clips = clips.reshape(S, V, 3, CLIP_SIDE, CLIP_SIDE).repeat_interleave(hold, dim=1)  # (S, V hold, 3, 224, 224)
        return clips.permute(0, 2, 1, 3, 4).contiguous()  # (S, 3, V hold, 224, 224)

    @torch.no_grad()
    def features(self, scenes: Sequence[tuple[Sequence[np.ndarray], Sequence[int]]]) -> np.ndarray:
        """(N, D) features of every clip of ``scenes``, each (its V videos, the time steps to take)."""
        out = []
        for videos, frames in scenes:
            clips = self.clips(videos, frames)
            for start in range(0, len(clips), FVD_BATCH):
                batch = clips[start : start + FVD_BATCH].to(self.device)
                try:
                    features = self.network(batch, **self.kwargs)
                except RuntimeError as e:
                    raise FvdError(f"the --fvd network {self.name} failed on clips of shape {tuple(batch.shape)} "
                                   f"({_first_line(e)}); it must map (N, 3, T, 224, 224) clips to (N, D) "
                                   "features") from None
                out.append(features.reshape(len(batch), -1).float().cpu().numpy())
        return np.concatenate(out)

    def distance(self, evaluated: Sequence[tuple[Sequence[np.ndarray], Sequence[int]]],
                 reference: Sequence[tuple[Sequence[np.ndarray], Sequence[int]]]) -> float:
        """FVD-V of the evaluated scenes against the reference scenes (module docstring)."""
        views = {len(videos) for videos, _ in [*evaluated, *reference]}
        if len(views) > 1:
            raise FvdError(f"FVD-V compares clips across the same number of views; the scenes have {sorted(views)} "
                           "views; give --fvd-reference scenes with as many cameras as the evaluated ones")
        return frechet_distance(self.features(evaluated), self.features(reference))
