"""Wrong cameras on purpose: the controls a consistency measure must score worse than the truth.

``perturbed`` turns every camera of a rig about its own centre by a fixed angle (a seeded random axis per camera,
the same axes for every angle, so a larger angle is the same error grown); ``swapped`` lets two views trade cameras,
and ``farthest_from`` names the view whose trade with a given one is the largest error (their optical axes furthest
apart). The videos stay as they are: only the cameras a scene claims change.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..cameras import CameraRig
from ..scene import Scene

PERTURBATION_SEED = 0


def perturbed(scene: Scene, degrees: float, seed: int = PERTURBATION_SEED) -> Scene:
    """``scene`` whose cameras are each rotated by ``degrees`` about their centre (random axis per camera)."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(scene.rig.num_views, 3))  # (V, 3) one axis per camera, drawn before the angle is used
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    c2w = np.array(scene.rig.c2w)  # (V, 4, 4) or (V, T, 4, 4)
    for view, axis in enumerate(axes):
        turn = cv2.Rodrigues(axis * np.radians(degrees))[0]  # (3, 3) in the camera's own axes
        c2w[view, ..., :3, :3] = c2w[view, ..., :3, :3] @ turn
    rig = CameraRig(c2w, scene.rig.names, intrinsics=scene.rig.intrinsics, subject=scene.rig.subject)
    return Scene(scene.videos, rig, scene.intrinsics, scene.prompt, scene.fps)


def swapped(scene: Scene, view_a: int | str, view_b: int | str) -> Scene:
    """``scene`` in which two views (indices or names) trade cameras: each video claims the other's pose."""
    names = scene.rig.names
    i, j = (names.index(v) if isinstance(v, str) else int(v) for v in (view_a, view_b))
    order = list(range(scene.rig.num_views))
    order[i], order[j] = j, i
    rig = CameraRig(scene.rig.c2w[order], names, intrinsics=scene.rig.intrinsics, subject=scene.rig.subject)
    return Scene(scene.videos, rig, scene.intrinsics, scene.prompt, scene.fps)


def farthest_from(scene: Scene, view: int | str) -> str:
    """The name of the view whose optical axis (first frame) makes the largest angle with ``view``'s: trading these
    two turns every pair they belong to by at least that angle."""
    names = scene.rig.names
    i = names.index(view) if isinstance(view, str) else int(view)
    axes = scene.rig.c2w_at(0)[:, :3, 2]  # (V, 3) optical axes (OpenCV z) in the world
    axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    return names[min((j for j in range(len(names)) if j != i), key=lambda j: float(axes[i] @ axes[j]))]
