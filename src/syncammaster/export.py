"""Export a scene folder for 3D and 4D reconstruction tools (the ``syncammaster export`` command).

Every frame of every camera becomes ``images/<camera>_<frame>.png`` (flat names: nerfstudio's downscaled copies,
images_2/ ..., keep only the file name), with one camera-to-world matrix and, for dynamic methods, a time.

``--format nerfstudio`` (default) writes ``transforms.json`` for nerfstudio's ``nerfstudio-data`` parser (splatfacto,
nerfacto): ``camera_model`` ("PINHOLE"), ``fl_x, fl_y, cx, cy`` (pixels) and ``w, h`` at the top level (one camera
model for all images, the parser's "fixed" intrinsics), and per image ``file_path``, ``transform_matrix`` and
``time`` in [0, 1] (video frame t of T at t / (T - 1)). That parser reads no time: it sees one static scene and fuses
every frame of every camera into it, so a moving subject comes out blurred. ``--frame K`` exports time step K alone,
all cameras: a static scene, reconstructed as it is.

``--format dnerf`` writes the D-NeRF layout, which nerfstudio's D-NeRF parser (``ns-train dnerf --data OUT``) and 4D
Gaussian splatting codes (4DGaussians' Blender reader) read::

    OUT/
      transforms_train.json, transforms_val.json, transforms_test.json
      images/cam01_00000.png ...

Each file holds ``camera_angle_x`` (the horizontal field of view in radians: the readers take fx = fy and the
principal point at the image centre, so a scene whose intrinsics are otherwise is refused) and ``frames``, each with
``file_path`` without extension ("./images/cam01_00000"; the readers add ".png"), ``transform_matrix`` and ``time`` in
[0, 1] (t / (T - 1)). Held out: one camera, the middle one of the rig's order (index V // 2; ``--holdout`` names
another), all of whose frames are both val and test (nerfstudio evaluates on val while training and on test in
``ns-eval``; 4DGaussians reads train and test); every other camera's frames train. The test is then a view between
cameras seen in training, at every time. D-NeRF's scenes put the cameras 4 units from an object inside
[-1.5, 1.5]^3, and their readers assume it (nerfstudio's D-NeRF parser fixes that scene box and its models sample rays
from 2 to 6 units; 4DGaussians starts from random points in [-1.3, 1.3]^3), so the world is moved to put the point the
cameras look at (nearest to every optical axis; 3 m in front of the foremost camera when the axes are near parallel,
:func:`dnerf_world`) at the origin, and scaled so the cameras are on average ``DNERF_CAMERA_DISTANCE`` from it.
``applied_transform`` (3x4, A) and ``applied_scale`` (s) record the map from the scene's world:
x_exported = s * A [x; 1]. 4DGaussians resizes every image to 800x800, so square videos suit it.

Conventions. Both layouts use OpenGL camera axes: x right, y up, z backward (the camera looks along -z); ours are
OpenCV's (x right, y down, z forward, see :mod:`syncammaster.cameras`). Their world must be right-handed, while
SynCamVideo's is Unreal's left-handed X forward, Y right, Z up: such a world is exported with its Y axis negated
(X forward, Y left, Z up), recorded as ``applied_transform`` (the nerfstudio parser's key for the transform applied
to the original world). Lengths stay in training units (UE cm / 200), scaled as above for D-NeRF.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import save_atomically
from .camera_presets import PRESET_SUBJECT_DISTANCE_CM
from .cameras import UE_UNITS_PER_TRAINING_UNIT, Intrinsics
from .scene import Scene, SceneError

__all__ = [
    "EXPORT_FORMATS",
    "dnerf_transforms",
    "export_dnerf",
    "export_nerfstudio",
    "nerfstudio_transforms",
    "opencv_to_nerfstudio_c2w",
]

EXPORT_FORMATS = ("nerfstudio", "dnerf")
TRANSFORMS_FILE = "transforms.json"
DNERF_SPLITS = ("train", "val", "test")
IMAGES_DIR = "images"
# D-NeRF's synthetic scenes: cameras about 4 units from the object (the distance their readers' defaults assume).
DNERF_CAMERA_DISTANCE = 4.0
# Optical axes closer to parallel than this (smallest eigenvalue of the mean of I - d d^T, i.e. sin^2 of the spread)
# do not meet near one point: the export centres in front of the cameras instead.
PARALLEL_AXES = 1e-3

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


def _frame_c2w(scene: Scene) -> np.ndarray:
    """(V, T, 4, 4) OpenCV camera-to-world of every camera at every video frame (a static rig repeated)."""
    rig, num_frames = scene.rig, scene.num_frames
    return rig.c2w if not rig.is_static else np.broadcast_to(rig.c2w[:, None], (rig.num_views, num_frames, 4, 4))


def _intrinsics(scene: Scene) -> Intrinsics:
    """The scene's intrinsics, else the training formula (:meth:`Intrinsics.training`)."""
    _, height, width, _ = scene.videos[0].shape
    return scene.intrinsics if scene.intrinsics is not None else Intrinsics.training(width, height)


def _time(frame: int, num_frames: int) -> float:
    return frame / (num_frames - 1) if num_frames > 1 else 0.0


# ----------------------------------------------------------------------------------------------------------------
# nerfstudio
# ----------------------------------------------------------------------------------------------------------------


def nerfstudio_transforms(scene: Scene, frame: int | None = None) -> dict:
    """The content of ``transforms.json`` for a scene: every frame, or time step ``frame`` alone (all cameras)."""
    num_frames, height, width, _ = scene.videos[0].shape
    intrinsics = _intrinsics(scene)
    transforms = opencv_to_nerfstudio_c2w(_frame_c2w(scene))  # (V, T, 4, 4)
    steps = range(num_frames) if frame is None else [frame]
    frames = [
        {
            "file_path": _image_file(name, t),
            "transform_matrix": transforms[v, t].tolist(),
            "time": _time(t, num_frames),
            "camera": name,
            "frame_index": t,
        }
        for v, name in enumerate(scene.rig.names)
        for t in steps
    ]
    return {
        "camera_model": "PINHOLE",
        "fl_x": intrinsics.fx,
        "fl_y": intrinsics.fy,
        "cx": intrinsics.cx,
        "cy": intrinsics.cy,
        "w": width,
        "h": height,
        "applied_transform": world_transform(scene.rig.c2w)[:3].tolist(),
        "frames": frames,
    }


# ----------------------------------------------------------------------------------------------------------------
# D-NeRF
# ----------------------------------------------------------------------------------------------------------------


def dnerf_world(c2w: np.ndarray) -> tuple[np.ndarray, float]:
    """The centre and scale of the D-NeRF export, from nerfstudio-convention camera-to-world matrices.

    Args:
        c2w: (..., 4, 4) OpenGL-axis camera-to-world in a right-handed world (:func:`opencv_to_nerfstudio_c2w`).

    Returns:
        the point the cameras look at (3,): nearest (least squares) to every optical axis; where the axes are near
        parallel (one camera, a dolly) or meet behind a camera, the presets' subject distance (3 m) in front of the
        foremost camera along the mean view direction; and the scale putting the cameras on average
        ``DNERF_CAMERA_DISTANCE`` from it.
    """
    c2w = np.asarray(c2w, dtype=np.float64).reshape(-1, 4, 4)
    centres = c2w[:, :3, 3]  # (N, 3)
    forward = -c2w[:, :3, 2]  # (N, 3): OpenGL cameras look along -z
    off_axis = np.eye(3) - forward[:, :, None] * forward[:, None, :]  # (N, 3, 3): projects out each axis
    normal = off_axis.mean(0)  # (3, 3)
    focus = None
    if np.linalg.eigvalsh(normal)[0] > PARALLEL_AXES:
        focus = np.linalg.solve(normal, (off_axis @ centres[:, :, None]).mean(0)[:, 0])
        if not (((focus - centres) * forward).sum(-1) > 0).all():  # behind a camera
            focus = None
    if focus is None:
        view = forward.mean(0) / np.linalg.norm(forward.mean(0))  # (3,)
        foremost = centres[np.argmax(centres @ view)]
        focus = foremost + view * PRESET_SUBJECT_DISTANCE_CM / UE_UNITS_PER_TRAINING_UNIT  # cm -> training units
    distance = np.linalg.norm(centres - focus, axis=-1).mean()
    return focus, DNERF_CAMERA_DISTANCE / distance


def _holdout_index(scene: Scene, holdout: str | None) -> int:
    names = scene.rig.names
    if len(names) < 2:
        raise SceneError(f"the D-NeRF layout holds a camera out for val and test, so it needs 2 or more; this scene "
                         f"has {len(names)}; use --format nerfstudio")
    if holdout is None:
        return len(names) // 2
    if holdout in names:
        return names.index(holdout)
    if holdout.isdigit() and int(holdout) < len(names):
        return int(holdout)
    raise SceneError(f"--holdout {holdout} is not a camera of the scene; give an index 0 to {len(names) - 1} or a "
                     f"name ({', '.join(names)})")


def dnerf_transforms(scene: Scene, holdout: str | None = None) -> dict[str, dict]:
    """The contents of ``transforms_{train,val,test}.json`` for a scene, split name -> content (module docstring)."""
    num_frames, height, width, _ = scene.videos[0].shape
    intrinsics = _intrinsics(scene)
    close = 1e-3 * max(width, height)  # pixels
    if (abs(intrinsics.fx - intrinsics.fy) > 1e-3 * intrinsics.fx or abs(intrinsics.cx - width / 2) > close
            or abs(intrinsics.cy - height / 2) > close):
        raise SceneError(
            f"the D-NeRF layout holds one field of view (fx = fy, principal point at the centre) but this scene's "
            f"intrinsics are fx={intrinsics.fx:g}, fy={intrinsics.fy:g}, cx={intrinsics.cx:g}, cy={intrinsics.cy:g} "
            f"for {width}x{height}; use --format nerfstudio"
        )
    held_out = _holdout_index(scene, holdout)
    c2w = opencv_to_nerfstudio_c2w(_frame_c2w(scene))  # (V, T, 4, 4)
    centre, scale = dnerf_world(c2w)
    c2w = c2w.copy()
    c2w[..., :3, 3] = (c2w[..., :3, 3] - centre) * scale  # rotations unchanged
    applied = world_transform(scene.rig.c2w)[:3].copy()  # (3, 4): x -> A [x; 1] before the scale
    applied[:, 3] -= centre
    header = {
        "camera_angle_x": 2 * math.atan(width / (2 * intrinsics.fx)),
        "applied_transform": applied.tolist(),
        "applied_scale": scale,
    }

    def frames(views: list[int]) -> list[dict]:
        return [
            {
                "file_path": "./" + _image_file(scene.rig.names[v], t).removesuffix(".png"),
                "transform_matrix": c2w[v, t].tolist(),
                "time": _time(t, num_frames),
                "camera": scene.rig.names[v],
                "frame_index": t,
            }
            for v in views
            for t in range(num_frames)
        ]

    trained = [v for v in range(scene.rig.num_views) if v != held_out]
    return {"train": {**header, "frames": frames(trained)}, "val": {**header, "frames": frames([held_out])},
            "test": {**header, "frames": frames([held_out])}}


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def _write_export(scene_dir: str | Path, out_dir: str | Path, files) -> Path:
    """Read the scene, then write ``files(scene)`` (file name -> JSON content) and the images those files name into
    ``out_dir``, a new or empty folder; all or nothing (written next to ``out_dir``, moved in when complete)."""
    scene_dir, out_dir = Path(scene_dir), Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise SceneError(
            f"{out_dir} exists and is not an empty folder; choose a new --out folder (nothing is replaced)"
        )
    scene = Scene.read(scene_dir)
    contents = files(scene)
    images = {(frame["camera"], frame["frame_index"]) for content in contents.values() for frame in content["frames"]}
    videos = dict(zip(scene.rig.names, scene.videos, strict=True))

    def save(folder: Path) -> None:
        (folder / IMAGES_DIR).mkdir()
        for name, t in sorted(images):
            Image.fromarray(videos[name][t]).save(folder / _image_file(name, t))  # (H, W, 3) uint8
        for file_name, content in contents.items():
            (folder / file_name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")

    return save_atomically(save, out_dir)


def export_nerfstudio(scene_dir: str | Path, out_dir: str | Path, frame: int | None = None) -> Path:
    """Write a scene folder as nerfstudio data (module docstring) into ``out_dir``, a new or empty folder: every
    frame, or time step ``frame`` alone."""

    def files(scene: Scene) -> dict[str, dict]:
        if frame is not None and not 0 <= frame < scene.num_frames:
            raise SceneError(f"--frame {frame} is not a frame of the {scene.num_frames}-frame scene; give 0 to "
                             f"{scene.num_frames - 1}")
        return {TRANSFORMS_FILE: nerfstudio_transforms(scene, frame)}

    return _write_export(scene_dir, out_dir, files)


def export_dnerf(scene_dir: str | Path, out_dir: str | Path, holdout: str | None = None) -> Path:
    """Write a scene folder in the D-NeRF layout (module docstring) into ``out_dir``, a new or empty folder."""

    def files(scene: Scene) -> dict[str, dict]:
        return {f"transforms_{split}.json": content for split, content in dnerf_transforms(scene, holdout).items()}

    return _write_export(scene_dir, out_dir, files)
