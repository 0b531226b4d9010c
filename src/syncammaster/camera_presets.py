"""Camera rig presets: the released SynCamVideo validation cameras and their pairs, and rigs generated around their
subject.

``CameraRig.preset`` and ``CameraRig.load`` (``syncammaster.cameras``) make rigs of them; ``syncammaster cameras``
lists them. The validation cameras ship as ``presets/syncamvideo_val_extrinsics.json`` (docs/architecture.md,
section 3.2). Generated presets are built in Unreal's world and converted with ``ue_to_opencv_c2w``, so that their
exports read like Unreal files (conventions: ``syncammaster.camera_conventions``).
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .camera_conventions import UE_UNITS_PER_TRAINING_UNIT, CameraError, ue_to_opencv_c2w
from .checks import is_int

__all__ = [
    "DEFAULT_GENERATED_VIEWS",
    "PRESET_SUBJECT_DISTANCE_CM",
    "RELEASED_PRESET_CAMERAS",
    "check_preset",
    "generated_preset_c2w",
    "list_presets",
    "preset_subject",
    "syncamvideo_val_file",
]

# Generated presets are laid out like the SynCamVideo validation rig: every camera looks at the point that rig looks
# at, 300 cm in front of its cam03 (UE location (12920, 1100, -570) cm looking along +X). Using the file's subject
# (rather than the origin) makes an exported preset read like a real UE file and makes e.g. `arc` with 5 views
# reproduce cam01..cam05 of that file.
PRESET_SUBJECT_UE_CM = (13220.0, 1100.0, -570.0)
PRESET_SUBJECT_DISTANCE_CM = 300.0
ARC_STEP_DEG = 15.0
ELEVATION_STEP_DEG = 15.0
ELEVATION_MAX_DEG = 60.0
DOLLY_STEP_CM = 100.0  # cam03 -> cam09 -> cam10 in the file
ORBIT_ELEVATION_DEG = 10.0
DEFAULT_GENERATED_VIEWS = 4

_PACKAGED_SYNCAMVIDEO_FILE = "syncamvideo_val_extrinsics.json"

# Released pairs, in the view order of the released inference code: its camera tensor puts the "tgt" camera first
# (view 0, identity) and the "cond" camera second (az: tgt cam01 / cond cam03, el: cam03 / cam07, dis: cam09 / cam10).
# None: all the validation cameras.
RELEASED_PRESET_CAMERAS: dict[str, list[str] | None] = {
    "az": ["cam01", "cam03"],
    "el": ["cam03", "cam07"],
    "dis": ["cam09", "cam10"],
    "syncamvideo": None,
}

_PRESET_DESCRIPTIONS: dict[str, str] = {
    "az": "released SynCamVideo pair cam01, cam03: 30 deg apart in azimuth on a 3 m circle (2 views)",
    "el": "released SynCamVideo pair cam03, cam07: 0 and 20 deg elevation (2 views)",
    "dis": "released SynCamVideo pair cam09, cam10: 4 m and 5 m from the subject on one axis (2 views)",
    "syncamvideo": "all 10 SynCamVideo validation cameras (azimuth arc, elevations, dolly)",
    "arc": f"N cameras on a 3 m circle around the subject, {ARC_STEP_DEG:g} deg apart, symmetric about the front",
    "elevation": f"N cameras at 3 m, elevation 0 deg upwards in {ELEVATION_STEP_DEG:g} deg steps "
    f"(at most {ELEVATION_MAX_DEG:g} deg)",
    "dolly": f"N cameras on one view axis, 3 m from the subject and stepping back {DOLLY_STEP_CM / 100:g} m each",
    "orbit": f"N cameras evenly on a full 360 deg ring at 3 m, {ORBIT_ELEVATION_DEG:g} deg elevation",
}


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    return dict(_PRESET_DESCRIPTIONS)


def check_preset(name: str, num_views: int | None) -> None:
    """Raise CameraError unless ``name`` is a preset and ``num_views`` None or a positive integer."""
    if name not in _PRESET_DESCRIPTIONS:
        raise CameraError(
            f"unknown camera preset {name!r}; choose one of {', '.join(_PRESET_DESCRIPTIONS)} "
            "or give a path to a SynCamVideo camera_extrinsics.json"
        )
    if num_views is not None and (not is_int(num_views) or num_views < 1):
        raise CameraError(f"num_views must be a positive integer, got {num_views!r}")


def preset_subject() -> np.ndarray:
    """(3,) the point every preset camera looks at, in training units (Unreal's world)."""
    return np.array(PRESET_SUBJECT_UE_CM) / UE_UNITS_PER_TRAINING_UNIT  # UE cm -> training units


@contextmanager
def syncamvideo_val_file() -> Iterator[Path]:
    """The path of the 10 SynCamVideo validation cameras shipped with the package, while the context is open."""
    resource = importlib.resources.files("syncammaster") / "presets" / _PACKAGED_SYNCAMVIDEO_FILE
    with importlib.resources.as_file(resource) as path:
        yield path


def _ue_look_at_rows(yaw_deg: float, pitch_deg: float, distance_cm: float) -> np.ndarray:
    """(4, 4) Unreal row-vector matrix of a roll-free camera ``distance_cm`` from the preset subject, looking at it.

    UE rotation with yaw about Z (positive turns X toward Y) and pitch (positive looks up): rows forward, right, up,
    as UE's rotation matrix writes them (e.g. yaw -30: forward (cos 30, -sin 30, 0), right (sin 30, cos 30, 0)).
    """
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
    up = np.array([-math.sin(pitch) * math.cos(yaw), -math.sin(pitch) * math.sin(yaw), math.cos(pitch)])
    location = np.array(PRESET_SUBJECT_UE_CM) - distance_cm * forward
    rows = np.zeros((4, 4))
    rows[0, :3], rows[1, :3], rows[2, :3], rows[3, :3] = forward, right, up, location
    rows[3, 3] = 1.0
    # Trigonometric residue such as cos(90 deg) = 6e-17 becomes an exact 0, so exported files read like UE's.
    rows[np.abs(rows) < 1e-12] = 0.0
    return rows


def generated_preset_c2w(name: str, num_views: int) -> np.ndarray:
    """(V, 4, 4) OpenCV-axis ``c2w`` of a generated preset (arc, elevation, dolly, orbit) of ``num_views`` cameras."""
    indices = np.arange(num_views)
    if name == "arc":
        max_views = int(360 / ARC_STEP_DEG)
        if num_views > max_views:
            raise CameraError(
                f"an arc of {num_views} cameras {ARC_STEP_DEG:g} deg apart would wrap past 360 deg; "
                f"use at most {max_views} views or the 'orbit' preset"
            )
        # Camera yaw from negative to positive, as cam01..cam05 in the file (5 views reproduce them).
        yaws = (indices - (num_views - 1) / 2) * ARC_STEP_DEG
        poses = [(yaw, 0.0, PRESET_SUBJECT_DISTANCE_CM) for yaw in yaws]
    elif name == "elevation":
        step = ELEVATION_STEP_DEG if num_views <= 1 else min(ELEVATION_STEP_DEG, ELEVATION_MAX_DEG / (num_views - 1))
        # Elevated cameras pitch down toward the subject (negative UE pitch), on the 300 cm sphere.
        poses = [(0.0, -i * step, PRESET_SUBJECT_DISTANCE_CM) for i in indices]
    elif name == "dolly":
        poses = [(0.0, 0.0, PRESET_SUBJECT_DISTANCE_CM + i * DOLLY_STEP_CM) for i in indices]
    elif name == "orbit":
        poses = [(i * 360.0 / num_views, -ORBIT_ELEVATION_DEG, PRESET_SUBJECT_DISTANCE_CM) for i in indices]
    else:
        raise CameraError(f"unknown generated preset {name!r}; choose arc, elevation, dolly or orbit")
    ue_rows = np.stack([_ue_look_at_rows(yaw, pitch, distance) for yaw, pitch, distance in poses])  # (V, 4, 4)
    return ue_to_opencv_c2w(ue_rows)
