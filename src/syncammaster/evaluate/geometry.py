"""Two-view geometry implied by the requested cameras: fundamental matrices and epipolar distances.

Conventions (as in :mod:`syncammaster.cameras`): ``c2w`` maps OpenCV camera axes (x right, y down, z forward) to the
world; pixel (row i, column j) covers [j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5). Points given to the
distance functions are (N, 2) arrays of (x, y) in that pixel convention.
"""

from __future__ import annotations

import numpy as np

from ..cameras import Intrinsics

# A pair of cameras whose centres are closer than this (relative to their distance from the world origin plus one
# training unit) has no defined epipolar geometry: a pure rotation maps points, it does not constrain them to lines.
MIN_RELATIVE_BASELINE = 1e-6


class GeometryError(ValueError):
    """Two cameras that define no epipolar geometry (or inputs of the wrong shape)."""


def _skew(t: np.ndarray) -> np.ndarray:
    """(3,) -> (3, 3) matrix of the cross product: skew(t) @ v == cross(t, v)."""
    return np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])


def fundamental_from_cameras(
    c2w_a: np.ndarray, intrinsics_a: Intrinsics, c2w_b: np.ndarray, intrinsics_b: Intrinsics
) -> np.ndarray:
    """The fundamental matrix F of cameras a and b: x_b^T F x_a = 0 for images x_a, x_b of one 3-D point.

    Args:
        c2w_a, c2w_b: (4, 4) camera-to-world matrices (OpenCV camera axes).
        intrinsics_a, intrinsics_b: pixel intrinsics of the two images.

    Returns:
        (3, 3) float64 F, scaled to unit Frobenius norm.
    """
    c2w_a, c2w_b = np.asarray(c2w_a, dtype=np.float64), np.asarray(c2w_b, dtype=np.float64)
    if c2w_a.shape != (4, 4) or c2w_b.shape != (4, 4):
        raise GeometryError(f"camera matrices must be 4x4, got {c2w_a.shape} and {c2w_b.shape}")
    a_to_b = np.linalg.inv(c2w_b) @ c2w_a  # camera a coordinates -> camera b coordinates
    rotation, translation = a_to_b[:3, :3], a_to_b[:3, 3]
    scale = 1.0 + max(np.linalg.norm(c2w_a[:3, 3]), np.linalg.norm(c2w_b[:3, 3]))
    if np.linalg.norm(translation) < MIN_RELATIVE_BASELINE * scale:
        raise GeometryError("the two cameras share their centre (no baseline), so they define no epipolar geometry")
    essential = _skew(translation) @ rotation  # X_b^T E X_a = 0 for camera-frame rays
    fundamental = np.linalg.inv(intrinsics_b.K).T @ essential @ np.linalg.inv(intrinsics_a.K)
    return fundamental / np.linalg.norm(fundamental)


def _homogeneous(points: np.ndarray, what: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise GeometryError(f"{what} must be an (N, 2) array of pixel coordinates, got shape {points.shape}")
    return np.concatenate([points, np.ones((len(points), 1))], axis=1)  # (N, 3)


def epipolar_distances(fundamental: np.ndarray, points_a: np.ndarray, points_b: np.ndarray) -> dict[str, np.ndarray]:
    """Per-match distances in pixels of matches (points_a[n] <-> points_b[n]) to the epipolar geometry F.

    Returns:
        ``sampson``: (N,) first-order geometric error, sqrt((x_b^T F x_a)^2 / (|(F x_a)_12|^2 + |(F^T x_b)_12|^2));
        ``symmetric``: (N,) mean of the distance of x_b to the line F x_a and of x_a to the line F^T x_b.
    """
    xa, xb = _homogeneous(points_a, "points_a"), _homogeneous(points_b, "points_b")
    if len(xa) != len(xb):
        raise GeometryError(f"got {len(xa)} points in view a but {len(xb)} in view b; give one pair per match")
    lines_b = xa @ fundamental.T  # (N, 3): epipolar lines F x_a in image b
    lines_a = xb @ fundamental  # (N, 3): epipolar lines F^T x_b in image a
    residual = np.abs(np.sum(xb * lines_b, axis=1))  # (N,) |x_b^T F x_a|
    norm_b = np.hypot(lines_b[:, 0], lines_b[:, 1])
    norm_a = np.hypot(lines_a[:, 0], lines_a[:, 1])
    tiny = np.finfo(np.float64).tiny
    sampson = residual / np.sqrt(np.maximum(norm_a**2 + norm_b**2, tiny))
    symmetric = 0.5 * (residual / np.maximum(norm_b, tiny) + residual / np.maximum(norm_a, tiny))
    return {"sampson": sampson, "symmetric": symmetric}


def epipolar_lines(fundamental: np.ndarray, points_a: np.ndarray) -> np.ndarray:
    """(N, 3) lines (a, b, c) with a x + b y + c = 0 in image b, normalised so (a, b) is a unit vector."""
    lines = _homogeneous(points_a, "points_a") @ fundamental.T
    return lines / np.maximum(np.hypot(lines[:, :1], lines[:, 1:2]), np.finfo(np.float64).tiny)
