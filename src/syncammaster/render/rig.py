"""Cameras of a procedural scene: static cameras on a hemisphere around the subject, as in SynCamVideo.

Cameras are built the way Unreal Engine describes them (rows forward, right, up, location in cm; world axes X forward,
Y right, Z up) and converted once with :func:`syncammaster.cameras.ue_to_opencv_c2w`, so the rig that renders a scene
is exactly the rig its ``camera_extrinsics.json`` reads back as. Conventions: :mod:`syncammaster.camera_conventions`.
"""

from __future__ import annotations

import numpy as np

from ..cameras import UE_UNITS_PER_TRAINING_UNIT, CameraRig, Intrinsics, ue_to_opencv_c2w

__all__ = ["LOOK_AT", "place_rig", "project_points", "rig_subject", "sample_cameras", "ue_camera_rows"]

# Every camera looks at this point (training units, world = UE axes): the scene centre, a little above the floor,
# about where the objects' middles are.
LOOK_AT = (0.0, 0.0, 0.15)

# SynCamVideo-like hemisphere: ~3 m (1.5 units) from the subject, jittered 2.5 to 4 m; elevation 0 to 40 degrees;
# azimuth within +-90 degrees of a per-scene base azimuth. The base stays within +-45 degrees of the scene's front
# (a camera looking along +X, see render.world), so that the captions' "left" / "right" mostly read as such.
DISTANCE_RANGE = (1.25, 2.0)
ELEVATION_RANGE_DEG = (0.0, 40.0)
AZIMUTH_SPREAD_DEG = 90.0
BASE_AZIMUTH_RANGE_DEG = (-45.0, 45.0)

# How far in front of the first camera a rig whose axes do not meet is taken to look (SynCamVideo's 300 cm).
SUBJECT_DISTANCE = 1.5

_CAMERA_STREAM = 3  # random stream of a scene seed used for its cameras (render.world uses 1 and 2)


def ue_camera_rows(yaw_deg: np.ndarray, pitch_deg: np.ndarray, location_cm: np.ndarray) -> np.ndarray:
    """Unreal row-vector matrices of roll-free cameras.

    Unreal rotation: yaw about Z (positive turns X toward Y), pitch about the camera's right axis (positive looks up).

    Args:
        yaw_deg: (V,) yaw of each camera's forward axis, degrees.
        pitch_deg: (V,) pitch, degrees (negative looks down).
        location_cm: (V, 3) camera locations in UE centimetres.

    Returns:
        (V, 4, 4) float64: rows forward, right, up (unit vectors) and location, as in a SynCamVideo file.
    """
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)  # (V,), (V,)
    cos_yaw, sin_yaw, cos_pitch, sin_pitch = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rows = np.zeros((len(yaw), 4, 4))
    rows[:, 0, :3] = np.stack([cos_pitch * cos_yaw, cos_pitch * sin_yaw, sin_pitch], axis=-1)  # forward
    rows[:, 1, :3] = np.stack([-sin_yaw, cos_yaw, np.zeros_like(yaw)], axis=-1)  # right: horizontal, no roll
    rows[:, 2, :3] = np.stack([-sin_pitch * cos_yaw, -sin_pitch * sin_yaw, cos_pitch], axis=-1)  # up
    rows[:, 3, :3] = location_cm
    rows[:, 3, 3] = 1.0
    return rows


def sample_cameras(seed: int, num_views: int, size: int | None = None) -> CameraRig:
    """V static cameras looking at :data:`LOOK_AT`, the same for the same ``seed``.

    Args:
        seed: a non-negative integer (a scene's seed; the cameras use their own random stream of it).
        num_views: the number of cameras, >= 1 (named cam01, cam02, ...).
        size: if given, the rig carries ``Intrinsics.training(size, size)`` (square SynCamVideo camera).

    Returns:
        A static CameraRig (OpenCV camera axes, UE world, training units) with ``subject`` = LOOK_AT.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"the camera seed must be a non-negative integer, got {seed!r}")
    if not isinstance(num_views, (int, np.integer)) or isinstance(num_views, bool) or num_views < 1:
        raise ValueError(f"the number of cameras must be a positive integer, got {num_views!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _CAMERA_STREAM]))
    base_azimuth = rng.uniform(*BASE_AZIMUTH_RANGE_DEG)
    yaw = base_azimuth + rng.uniform(-AZIMUTH_SPREAD_DEG, AZIMUTH_SPREAD_DEG, size=num_views)  # (V,) degrees
    pitch = -rng.uniform(*ELEVATION_RANGE_DEG, size=num_views)  # (V,) elevated cameras look down
    distance = rng.uniform(*DISTANCE_RANGE, size=num_views)  # (V,) training units

    rows = ue_camera_rows(yaw, pitch, np.zeros((num_views, 3)))  # (V, 4, 4)
    forward = rows[:, 0, :3]  # (V, 3)
    look_at_cm = np.array(LOOK_AT) * UE_UNITS_PER_TRAINING_UNIT  # training units -> UE cm
    rows[:, 3, :3] = look_at_cm - (distance * UE_UNITS_PER_TRAINING_UNIT)[:, None] * forward  # step back from it
    intrinsics = None if size is None else Intrinsics.training(size, size)
    return CameraRig(ue_to_opencv_c2w(rows), intrinsics=intrinsics, subject=LOOK_AT)


def rig_subject(rig: CameraRig) -> np.ndarray:
    """(3,) the point a static rig looks at: its ``subject`` when known, else the point nearest to every optical axis
    (least squares), else, for cameras on one axis (a dolly), the point 1.5 units (SynCamVideo's 300 cm) in front of
    the first camera."""
    if rig.subject is not None:
        return np.array(rig.subject, dtype=np.float64)
    c2w = rig.c2w_at(0)  # (V, 4, 4)
    centres = c2w[:, :3, 3]  # (V, 3)
    axes = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=-1, keepdims=True)  # (V, 3) optical axes
    # Sum over cameras of the projector orthogonal to each axis: the normal equations of the nearest point.
    across = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # (V, 3, 3)
    normal = across.sum(0)  # (3, 3)
    if np.linalg.cond(normal) < 1e6:
        point = np.linalg.solve(normal, np.einsum("vij,vj->i", across, centres))
        if np.all(np.einsum("vi,vi->v", point[None] - centres, axes) > 0):  # in front of every camera
            return point
    return centres[0] + SUBJECT_DISTANCE * axes[0]


def place_rig(rig: CameraRig) -> np.ndarray:
    """(V, 4, 4) c2w of a static rig moved (translated, not turned: both worlds are Unreal's, Z up) so that what it
    looks at is the procedural scene's centre :data:`LOOK_AT`. Per-frame rigs give their first frame."""
    c2w = rig.c2w_at(0).copy()  # (V, 4, 4)
    c2w[:, :3, 3] += np.array(LOOK_AT) - rig_subject(rig)
    return c2w


def project_points(rig: CameraRig, intrinsics: Intrinsics, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points into every camera of a static rig.

    Args:
        rig: static cameras (c2w with OpenCV camera axes).
        intrinsics: pixel intrinsics of the images.
        points_world: (N, 3) world points.

    Returns:
        pixels (V, N, 2) float64 (x = column, y = row, pixel (i, j) covering [j, j+1) x [i, i+1)) and
        depth (V, N) float64 camera z (distance along the optical axis; <= 0 behind the camera).
    """
    if not rig.is_static:
        raise ValueError("project_points needs a static rig; take one frame with CameraRig(rig.c2w_at(t))")
    points_world = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)  # (N, 3)
    c2w = rig.c2w  # (V, 4, 4)
    rotation, centre = c2w[:, :3, :3], c2w[:, :3, 3]  # (V, 3, 3), (V, 3)
    # Rigid inverse: camera coordinates = R^T (X - C); R is orthonormal (det -1 in UE's left-handed world).
    points_cam = np.einsum("vji,vnj->vni", rotation, points_world[None] - centre[:, None])  # (V, N, 3)
    depth = points_cam[..., 2]  # (V, N)
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = np.stack(
            [
                intrinsics.fx * points_cam[..., 0] / depth + intrinsics.cx,
                intrinsics.fy * points_cam[..., 1] / depth + intrinsics.cy,
            ],
            axis=-1,
        )  # (V, N, 2)
    return pixels, depth
