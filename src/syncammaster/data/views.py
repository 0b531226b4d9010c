"""View groups: which cameras of a scene may be trained together.

SynCamMaster trains on groups of V views of one scene whose cameras are not too far apart: every pair must differ by
less than ``max_az`` degrees in azimuth and ``max_el`` degrees in elevation (the release: V = 2, 30 and 15 degrees).

Angles are computed from the extrinsics, in the scene's world frame, at the first frame of the rig. The world of
SynCamVideo files (and of our renderer) is Unreal Engine's: X forward, Y right, Z up. A camera's viewing direction is
its optical axis ``f`` = third column of its OpenCV-axis ``c2w`` (camera z, forward), and

    azimuth   = atan2(f_y, f_x)   yaw about the up axis Z, 0 along world X, positive turning X toward Y
    elevation = asin(f_z)         pitch of the optical axis, positive looking up

which are Unreal's yaw and pitch, the "rz" and "ry" of the release's rotation_data.json. Azimuth differences are taken
on the circle (170 and -170 degrees are 20 degrees apart); the release subtracts the stored angles directly.

A group is ordered: its first camera is view 0, the reference of the relative camera embedding. Pairwise validity
is symmetric, so every ordering of a valid set is a valid group; :func:`view_groups` lists all orderings.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np

from ..atomic import write_atomically
from ..cameras import CameraRig
from .index import DatasetError, SceneIndex

__all__ = [
    "DEFAULT_MAX_AZIMUTH",
    "DEFAULT_MAX_ELEVATION",
    "camera_angles",
    "view_combinations",
    "view_groups",
    "write_sample_list",
]

# The released training data's thresholds (generate_sample_list.py): |d_az| < 30 deg and |d_el| < 15 deg.
DEFAULT_MAX_AZIMUTH = 30.0
DEFAULT_MAX_ELEVATION = 15.0
DEFAULT_NUM_VIEWS = 2  # the released model trains on pairs


def camera_angles(rig: CameraRig) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth, elevation) of every camera in degrees, each (V,), at the rig's first frame (module docstring)."""
    c2w = rig.c2w_at(0)  # (V, 4, 4)
    forward = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=-1, keepdims=True)  # (V, 3) optical axes, world
    azimuth = np.degrees(np.arctan2(forward[:, 1], forward[:, 0]))  # (V,)
    elevation = np.degrees(np.arcsin(np.clip(forward[:, 2], -1.0, 1.0)))  # (V,)
    return azimuth, elevation


def _compatible(rig: CameraRig, max_az: float, max_el: float) -> np.ndarray:
    """(V, V) bool: cameras i and j may share a group (|d_az| < max_az and |d_el| < max_el; False on the diagonal)."""
    for name, value in (("max_az", max_az), ("max_el", max_el)):
        if not math.isfinite(value) or value <= 0:
            raise DatasetError(f"{name} must be a positive number of degrees, got {value!r}")
    azimuth, elevation = camera_angles(rig)
    d_az = np.abs((azimuth[:, None] - azimuth[None] + 180.0) % 360.0 - 180.0)  # (V, V), on the circle: 0..180
    d_el = np.abs(elevation[:, None] - elevation[None])  # (V, V)
    compatible = (d_az < max_az) & (d_el < max_el)
    np.fill_diagonal(compatible, False)
    return compatible


def _check_num_views(num_views: int) -> None:
    if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
        raise DatasetError(f"the number of views must be a positive integer, got {num_views!r}")


def view_combinations(
    rig: CameraRig,
    num_views: int = DEFAULT_NUM_VIEWS,
    max_az: float = DEFAULT_MAX_AZIMUTH,
    max_el: float = DEFAULT_MAX_ELEVATION,
) -> list[tuple[int, ...]]:
    """Every set of ``num_views`` cameras that are pairwise within the thresholds, as increasing view indices.

    ``num_views=1`` gives every camera.
    """
    _check_num_views(num_views)
    compatible = _compatible(rig, max_az, max_el)  # (V, V)
    combinations: list[tuple[int, ...]] = []

    def extend(group: tuple[int, ...], candidates: list[int]) -> None:
        if len(group) == num_views:
            combinations.append(group)
            return
        for position, camera in enumerate(candidates):
            # Later candidates only (sets, not orderings), and compatible with the new camera as well.
            extend((*group, camera), [other for other in candidates[position + 1 :] if compatible[camera, other]])

    extend((), list(range(rig.num_views)))
    return combinations


def view_groups(
    rig: CameraRig,
    num_views: int = DEFAULT_NUM_VIEWS,
    max_az: float = DEFAULT_MAX_AZIMUTH,
    max_el: float = DEFAULT_MAX_ELEVATION,
) -> list[tuple[str, ...]]:
    """Every valid ordered group of ``num_views`` camera names (first = view 0), in lexicographic order of the
    cameras' positions in the rig (for pairs: (cam01, cam02), (cam01, cam03), ..., (cam02, cam01), ..., as the
    release's generate_sample_list.py)."""
    orderings = sorted(
        ordering
        for combination in view_combinations(rig, num_views, max_az, max_el)
        for ordering in itertools.permutations(combination)
    )
    names = rig.names
    return [tuple(names[i] for i in ordering) for ordering in orderings]


def write_sample_list(
    index: SceneIndex,
    out_path: str | Path,
    num_views: int = DEFAULT_NUM_VIEWS,
    max_az: float = DEFAULT_MAX_AZIMUTH,
    max_el: float = DEFAULT_MAX_ELEVATION,
) -> dict[str, list[list[str]]]:
    """Write the valid ordered view groups of every indexed scene as JSON ``{scene: [[cam, ...], ...]}``.

    The equivalent of the release's generate_sample_list.py (which wrote one ``2view_az30_el15_available_list.npy``
    of camera-number pairs per scene). Scenes without a valid group are listed with an empty list. The file is
    written atomically.

    Returns:
        the written mapping.
    """
    sample_list = {
        scene.name: [list(group) for group in view_groups(scene.rig, num_views, max_az, max_el)] for scene in index
    }
    write_atomically(out_path, json.dumps(sample_list, indent=1) + "\n")
    return sample_list
