"""A tiny dataset in the SynCamVideo layout, written in the tests: 3 scenes x 4 cameras, 32x32, 9 frames."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from syncammaster.cameras import CameraRig, Intrinsics, ue_to_opencv_c2w
from syncammaster.scene import Scene

from tiny import CAPTIONS

NUM_FRAMES, SIZE = 9, 32
SUBJECT_DISTANCE_CM = 300.0
CAMERAS = ["cam01", "cam02", "cam03", "cam04"]

# Per scene: camera azimuths and elevations in degrees (UE yaw and pitch). With the release's thresholds
# (|d_az| < 30, |d_el| < 15) the valid pairs are scene0001: (1,2) (2,3) (3,4); scene0002: (1,2) (1,3) (2,3);
# scene0003: (1,2) (2,3); and the only valid triple is scene0002's (1,2,3).
SCENE_ANGLES: dict[str, tuple[list[float], list[float]]] = {
    "procedural/scene0001": ([0.0, 20.0, 45.0, 60.0], [0.0, 0.0, 0.0, 0.0]),
    "procedural/scene0002": ([0.0, 10.0, 20.0, 70.0], [0.0, 0.0, 10.0, 0.0]),
    "procedural/scene0003": ([-30.0, -10.0, 10.0, 30.0], [0.0, 5.0, 5.0, 30.0]),
}
VALID_PAIRS = {
    "procedural/scene0001": [("cam01", "cam02"), ("cam02", "cam03"), ("cam03", "cam04")],
    "procedural/scene0002": [("cam01", "cam02"), ("cam01", "cam03"), ("cam02", "cam03")],
    "procedural/scene0003": [("cam01", "cam02"), ("cam02", "cam03")],
}


def rig_from_angles(azimuths: list[float], elevations: list[float], names: list[str] | None = None) -> CameraRig:
    """Roll-free cameras 3 m from the world origin looking at it, with the given UE yaw / pitch (degrees)."""
    ue_rows = []
    for yaw_deg, pitch_deg in zip(azimuths, elevations, strict=True):
        yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
        forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
        right = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
        up = np.array([-math.sin(pitch) * math.cos(yaw), -math.sin(pitch) * math.sin(yaw), math.cos(pitch)])
        rows = np.eye(4)
        rows[0, :3], rows[1, :3], rows[2, :3] = forward, right, up  # Unreal row-vector form
        rows[3, :3] = -SUBJECT_DISTANCE_CM * forward  # location, cm
        ue_rows.append(rows)
    return CameraRig(ue_to_opencv_c2w(np.stack(ue_rows)), names)


def smooth_video(seed: int, num_frames: int = NUM_FRAMES, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """(T, H, W, 3) uint8 moving colour gradients (easy for the codec, different per seed)."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    channels = [128 + 80 * np.sin(x / width * 2.0 + y / height * 1.3 + 0.4 * t + p) for p in phase]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def make_dataset(root: Path, num_frames: int = NUM_FRAMES, height: int = SIZE, width: int = SIZE) -> Path:
    """Write the 3 scenes under ROOT/train/procedural/ and ROOT/metadata.csv; returns ``root``."""
    rows = []
    for s, (name, (azimuths, elevations)) in enumerate(SCENE_ANGLES.items()):
        rig = rig_from_angles(azimuths, elevations, CAMERAS)
        videos = [smooth_video(10 * s + v, num_frames, height, width) for v in range(len(CAMERAS))]
        intrinsics = Intrinsics.centered(width, height, 0.9)
        Scene(videos, rig, intrinsics=intrinsics, prompt=CAPTIONS[s]).write(root / "train" / name, grid=False)
        rows += [(f"{name}/videos/{camera}.mp4", CAPTIONS[s]) for camera in CAMERAS]
    write_metadata(root, rows)
    return root


def write_metadata(root: Path, rows: list[tuple[str, str]]) -> None:
    with (root / "metadata.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "text"])
        writer.writerows(rows)


def read_metadata(root: Path) -> list[tuple[str, str]]:
    with (root / "metadata.csv").open(newline="", encoding="utf-8") as f:
        return [(row["file_name"], row["text"]) for row in csv.DictReader(f)]
