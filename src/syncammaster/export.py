"""Export a scene folder for 4D reconstruction tools, and the ``syncammaster export`` command.

``--format nerfstudio`` writes what nerfstudio's ``nerfstudio-data`` parser reads:

```
OUT/
  transforms.json                  intrinsics shared by every image, then one entry per image (camera, video frame)
  images/cam01_00000.png ...       frame t of camera cam01; flat names, as the parser's downscaled copies
                                   (images_2/, ...) keep only the file name
```

``transforms.json`` holds ``camera_model`` ("PINHOLE"), ``fl_x, fl_y, cx, cy`` (pixels) and ``w, h`` at the top
level (one camera model for all images, the parser's "fixed" intrinsics), and in each frame ``file_path``,
``transform_matrix`` (4x4 camera-to-world) and ``time`` in [0, 1] (video frame t of T at t / (T - 1)), the key
dynamic-scene parsers read. A scene without ``cameras/intrinsics.json`` gets the training formula
(:meth:`Intrinsics.training`).

Conventions. nerfstudio's cameras use OpenGL axes: x right, y up, z backward (the camera looks along -z); ours are
OpenCV's (x right, y down, z forward, see :mod:`syncammaster.cameras`). Its world must be right-handed, while
SynCamVideo's is Unreal's left-handed X forward, Y right, Z up: such a world is exported with its Y axis negated
(X forward, Y left, Z up), recorded as ``applied_transform`` (the parser's key for the transform applied to the
original world). Lengths stay in training units (UE cm / 200).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import save_atomically
from .cameras import Intrinsics
from .scene import Scene, SceneError

__all__ = ["EXPORT_FORMATS", "add_export_arguments", "export_nerfstudio", "opencv_to_nerfstudio_c2w", "run_export"]

EXPORT_FORMATS = ("nerfstudio",)
TRANSFORMS_FILE = "transforms.json"
IMAGES_DIR = "images"

# Camera axes OpenCV (x right, y down, z forward) -> OpenGL (x right, y up, z backward): negate camera y and z, i.e.
# columns 1 and 2 of a camera-to-world matrix (right-multiplication acts on the camera axes).
OPENCV_TO_OPENGL_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
# World axes Unreal (X forward, Y right, Z up; left-handed) -> right-handed (X forward, Y left, Z up): negate world Y,
# i.e. row 1 of a camera-to-world matrix (left-multiplication acts on world coordinates).
LEFT_TO_RIGHT_HANDED_WORLD = np.diag([1.0, -1.0, 1.0, 1.0])


def _image_file(camera: str, frame: int) -> str:
    return f"{IMAGES_DIR}/{camera}_{frame:05d}.png"


def world_transform(c2w: np.ndarray) -> np.ndarray:
    """(4, 4) change of world axes applied on export: the Y flip for a left-handed world (det R < 0), else identity.

    Args:
        c2w: (..., 4, 4) camera-to-world matrices of one rig (all share one handedness, checked by CameraRig).
    """
    first = np.asarray(c2w).reshape(-1, 4, 4)[0]
    return LEFT_TO_RIGHT_HANDED_WORLD if np.linalg.det(first[:3, :3]) < 0 else np.eye(4)


def opencv_to_nerfstudio_c2w(c2w: np.ndarray) -> np.ndarray:
    """(..., 4, 4) OpenCV-axis camera-to-world -> nerfstudio's: OpenGL camera axes in a right-handed world.

    Rotations come out proper (det +1) whichever handedness the source world had.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    return world_transform(c2w) @ c2w @ OPENCV_TO_OPENGL_CAMERA  # (..., 4, 4)


def nerfstudio_transforms(scene: Scene) -> dict:
    """The content of ``transforms.json`` for a scene (image paths as :func:`export_nerfstudio` writes them)."""
    num_frames, height, width, _ = scene.videos[0].shape
    intrinsics = scene.intrinsics if scene.intrinsics is not None else Intrinsics.training(width, height)
    rig = scene.rig
    c2w = rig.c2w if not rig.is_static else np.broadcast_to(rig.c2w[:, None], (rig.num_views, num_frames, 4, 4))
    transforms = opencv_to_nerfstudio_c2w(c2w)  # (V, T, 4, 4)
    frames = [
        {
            "file_path": _image_file(name, t),
            "transform_matrix": transforms[v, t].tolist(),
            "time": t / (num_frames - 1) if num_frames > 1 else 0.0,
            "camera": name,
            "frame_index": t,
        }
        for v, name in enumerate(rig.names)
        for t in range(num_frames)
    ]
    return {
        "camera_model": "PINHOLE",
        "fl_x": intrinsics.fx,
        "fl_y": intrinsics.fy,
        "cx": intrinsics.cx,
        "cy": intrinsics.cy,
        "w": width,
        "h": height,
        "applied_transform": world_transform(rig.c2w)[:3].tolist(),
        "frames": frames,
    }


def export_nerfstudio(scene_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a scene folder as nerfstudio data (module docstring) into ``out_dir``, a new or empty folder.

    All or nothing: the files are written next to ``out_dir`` and moved in when complete.
    """
    scene_dir, out_dir = Path(scene_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise SceneError(
            f"{out_dir} exists and is not an empty folder; choose a new --out folder (nothing is replaced)"
        )
    scene = Scene.read(scene_dir)
    transforms = nerfstudio_transforms(scene)

    def save(folder: Path) -> None:
        (folder / IMAGES_DIR).mkdir()
        for name, video in zip(scene.rig.names, scene.videos, strict=True):
            for t, frame in enumerate(video):  # (H, W, 3) uint8
                Image.fromarray(frame).save(folder / _image_file(name, t))
        (folder / TRANSFORMS_FILE).write_text(json.dumps(transforms, indent=2) + "\n", encoding="utf-8")

    return save_atomically(save, out_dir)


def add_export_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``syncammaster export`` flags to ``parser``; :func:`run_export` takes the parsed arguments."""
    parser.add_argument("scene", metavar="SCENE", help="a scene folder (generated or rendered)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="nerfstudio",
                        help="nerfstudio: images/ + transforms.json (default)")
    parser.add_argument("--out", required=True, help="output folder (new or empty)")
    return parser


def run_export(args: argparse.Namespace) -> Path:
    """``syncammaster export``: SceneError / CameraError (one line) for bad input."""
    out = export_nerfstudio(args.scene, args.out)
    num_images = sum(1 for _ in (out / IMAGES_DIR).iterdir())
    print(f"wrote {num_images} images and {TRANSFORMS_FILE} ({args.format}) to {out}/")
    return out
