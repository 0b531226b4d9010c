"""A folder of procedural scenes in the SynCamVideo layout, which ``syncammaster render`` writes.

```
OUT/
  metadata.csv                                   file_name,text: one row per video, paths relative to OUT/train
  train/procedural/scene0000/
    videos/cam01.mp4 ... camVV.mp4               15 fps H.264
    cameras/camera_extrinsics.json               Unreal matrices, T identical frames (static cameras)
    cameras/intrinsics.json                      Intrinsics.training(S, S)
    prompt.txt                                   the caption
    depth/cam01.npz ... camVV.npz                array `depth` (T, S, S) float32, camera z in training units, inf = sky
    render.json                                  the settings the scene was rendered with; written last
```

Scene k is drawn from a seed derived from (seed, k), so any subset of scenes renders identically, and rendering is
deterministic. A run can be interrupted and repeated: scene folders whose ``render.json`` matches the settings and
whose files are all there are skipped; ``metadata.csv`` is written (atomically) at the end.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import write_atomically
from ..cameras import CameraRig, Intrinsics
from ..checks import is_int
from ..jsonfile import JSONFileError, read_json
from ..scene import EXTRINSICS_FILE, INTRINSICS_FILE, PROMPT_FILE, Scene, video_file
from .raycast import render_views
from .rig import LOOK_AT, place_rig, sample_cameras
from .world import sample_scene

__all__ = [
    "METADATA_FILE",
    "SCENES_DIR",
    "render_dataset",
    "render_missing_scenes",
    "scene_seed",
]

TRAIN_DIR = "train"  # under the output folder; metadata.csv names videos relative to it
SCENES_SUBDIR = "procedural"
SCENES_DIR = Path(TRAIN_DIR) / SCENES_SUBDIR  # scene folders, under the output folder
METADATA_FILE = "metadata.csv"  # at the output folder's root
RENDER_FILE = "render.json"  # per scene: the settings it was rendered with, written last (marks it complete)
DEPTH_DIR = "depth"
FPS = 15.0  # SynCamVideo's frame rate
RENDERER = "syncammaster.render/1"  # bump when the pictures change, so old folders are not mixed with new ones
FRAME_STRIDE = 4  # the video VAE compresses time by 4: frame counts are 4k + 1
SIZE_MULTIPLE = 16  # VAE (8) x patch embedding (2)


def scene_seed(seed: int, index: int) -> int:
    """The seed of scene ``index`` of a dataset drawn with ``seed`` (independent streams for every scene)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def scene_dir_name(index: int) -> str:
    return f"scene{index:04d}"


def check_settings(num_scenes: int, num_views: int, num_frames: int, size: int, seed: int, workers: int) -> None:
    """Raise ValueError (one line: the bad value and a fix) unless the settings can be rendered."""
    if not is_int(num_scenes) or num_scenes < 1:
        raise ValueError(f"the number of scenes must be a positive integer, got {num_scenes!r}")
    if not is_int(num_views) or num_views < 1:
        raise ValueError(f"the number of cameras must be a positive integer, got {num_views!r}; a scene needs one")
    if not is_int(num_frames) or num_frames < 1 or (num_frames - 1) % FRAME_STRIDE:
        lower = max(1, (int(num_frames) - 1) // FRAME_STRIDE * FRAME_STRIDE + 1) if is_int(num_frames) else 1
        raise ValueError(
            f"the number of frames must be 4k+1 (1, 5, 9, 13, 17, ..., 81), got {num_frames!r}; "
            f"use {lower if lower == num_frames else f'{lower} or {lower + FRAME_STRIDE}'}"
        )
    if not is_int(size) or size < SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        lower = max(SIZE_MULTIPLE, int(size) // SIZE_MULTIPLE * SIZE_MULTIPLE) if is_int(size) else SIZE_MULTIPLE
        options = f"{lower}" if lower >= size else f"{lower} or {lower + SIZE_MULTIPLE}"
        raise ValueError(f"the image size must be a positive multiple of 16, got {size!r}; use {options}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"the seed must be a non-negative integer, got {seed!r}")
    if not is_int(workers) or workers < 1:
        raise ValueError(f"the number of workers must be a positive integer, got {workers!r}")


@dataclass(frozen=True)
class _SceneJob:
    """One scene to render and write (picklable, for the worker processes)."""

    scene_dir: Path
    settings: dict  # the content of render.json
    overwrite: bool  # the folder holds some of the scene's files from an interrupted run: replace them

    @property
    def seed(self) -> int:
        return scene_seed(self.settings["seed"], self.settings["scene"])


def _scene_settings(index: int, num_views: int, num_frames: int, size: int, seed: int,
                    rig_c2w: list | None = None) -> dict:
    settings = {
        "renderer": RENDERER,
        "seed": int(seed),
        "scene": int(index),
        "cameras": int(num_views),
        "frames": int(num_frames),
        "size": int(size),
    }
    if rig_c2w is not None:
        settings["rig"] = rig_c2w  # (V, 4, 4) c2w of the given rig as placed in the scene; absent: drawn per scene
    return settings


def _camera_names(num_views: int) -> list[str]:
    """The names sample_cameras gives its cameras: a CameraRig's default names (cam01, cam02, ...)."""
    return CameraRig(np.tile(np.eye(4), (num_views, 1, 1))).names


def _expected_files(num_views: int) -> list[str]:
    """Every file of a complete scene folder, relative to it."""
    names = _camera_names(num_views)
    return [
        *(video_file(name) for name in names),
        *(f"{DEPTH_DIR}/{name}.npz" for name in names),
        EXTRINSICS_FILE,
        INTRINSICS_FILE,
        PROMPT_FILE,
        RENDER_FILE,
    ]


def _depth_file(depth: np.ndarray) -> bytes:
    """np.savez_compressed bytes holding ``depth`` (T, S, S) float32."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, depth=depth)
    return buffer.getvalue()


def _render_scene(job: _SceneJob) -> int:
    """Render one scene and write its folder (all or nothing). Returns the scene index."""
    settings = job.settings
    spec = sample_scene(job.seed)
    if "rig" in settings:
        # The given rig, placed in the scene when the job was planned.
        rig = CameraRig(np.array(settings["rig"]), intrinsics=Intrinsics.training(settings["size"], settings["size"]),
                        subject=LOOK_AT)
    else:
        rig = sample_cameras(job.seed, settings["cameras"], size=settings["size"])
    videos, depth = render_views(spec, rig, settings["frames"], settings["size"])  # (V, T, S, S, 3), (V, T, S, S)
    extra_files = {f"{DEPTH_DIR}/{name}.npz": _depth_file(depth[v]) for v, name in enumerate(rig.names)}
    extra_files[RENDER_FILE] = (json.dumps(settings, indent=4) + "\n").encode()  # last: moved in after the rest
    scene = Scene(list(videos), rig, rig.intrinsics, spec.caption, fps=FPS)
    scene.write(job.scene_dir, grid=False, extra_files=extra_files, overwrite=job.overwrite)
    return settings["scene"]


def _plan(out: Path, num_scenes: int, num_views: int, num_frames: int, size: int, seed: int,
          rig_c2w: list | None = None) -> list[_SceneJob]:
    """The scenes still to render; raises ValueError if a scene folder holds a render with other settings."""
    jobs = []
    expected = _expected_files(num_views)
    for index in range(num_scenes):
        scene_dir = out / SCENES_DIR / scene_dir_name(index)
        settings = _scene_settings(index, num_views, num_frames, size, seed, rig_c2w)
        marker = scene_dir / RENDER_FILE
        if marker.is_file():
            try:
                found = read_json(marker, "render it again", expect=None)
            except JSONFileError:
                found = None  # an unreadable record: the scene counts as rendered with other settings
            if found != settings:
                raise ValueError(
                    f"{scene_dir} was rendered with other settings ({marker}); use the same settings to resume "
                    "or choose another output folder"
                )
            if all((scene_dir / rel).is_file() for rel in expected):
                continue  # complete: rendering it again would give the same files
        partial = any((scene_dir / rel).exists() for rel in expected)
        jobs.append(_SceneJob(scene_dir, settings, overwrite=partial))
    return jobs


def write_metadata(out: Path, num_scenes: int, num_views: int, seed: int) -> None:
    """metadata.csv (file_name,text; one row per video), all or nothing."""
    names = _camera_names(num_views)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["file_name", "text"])
    for index in range(num_scenes):
        caption = sample_scene(scene_seed(seed, index)).caption
        scene = f"{SCENES_SUBDIR}/{scene_dir_name(index)}"
        writer.writerows([f"{scene}/{video_file(name)}", caption] for name in names)
    write_atomically(out / METADATA_FILE, text.getvalue())


def render_missing_scenes(
    out: str | Path,
    num_scenes: int,
    num_views: int,
    num_frames: int,
    size: int,
    seed: int,
    workers: int | None,
    progress: bool,
    rig: CameraRig | None = None,
) -> tuple[Path, int]:
    """:func:`render_dataset`, also returning how many scenes it rendered (the others were already complete)."""
    # 1. Check inputs and find what is left to do.
    workers = (os.cpu_count() or 1) if workers is None else workers
    if rig is not None:
        num_views = rig.num_views
    check_settings(num_scenes, num_views, num_frames, size, seed, workers)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder; choose another output folder")
    rig_c2w = None if rig is None else place_rig(rig).tolist()
    jobs = _plan(out, num_scenes, num_views, num_frames, size, seed, rig_c2w)

    # 2. Render the missing scenes, in parallel over scenes.
    (out / SCENES_DIR).mkdir(parents=True, exist_ok=True)
    with tqdm(
        total=num_scenes, initial=num_scenes - len(jobs), unit="scene", desc="render", disable=not progress
    ) as bar:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                _render_scene(job)
                bar.update()
        else:
            with multiprocessing.Pool(min(workers, len(jobs))) as pool:
                for _ in pool.imap_unordered(_render_scene, jobs):
                    bar.update()

    # 3. The index of all scenes, once they are all there.
    write_metadata(out, num_scenes, num_views, seed)
    return out, len(jobs)


def render_dataset(
    out: str | Path,
    num_scenes: int,
    num_views: int = 10,
    num_frames: int = 17,
    size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    rig: CameraRig | None = None,
) -> Path:
    """Render ``num_scenes`` procedural scenes into ``out`` (layout: module docstring); resumable.

    Args:
        out: the dataset folder (created if needed).
        num_scenes: N scenes, scene0000 .. scene{N-1}.
        num_views: V static cameras per scene, >= 1, drawn per scene (ignored when ``rig`` is given).
        num_frames: T frames per video, 4k + 1.
        size: S, the side of the square videos in pixels, a multiple of 16.
        seed: the dataset seed; scene k uses ``scene_seed(seed, k)``.
        workers: processes rendering scenes in parallel (default: os.cpu_count()).
        progress: show a progress bar over scenes.
        rig: the same cameras for every scene instead of drawn ones: a static rig (a per-frame rig gives its first
            frame), moved so that what it looks at (:func:`~syncammaster.render.rig.rig_subject`) is the scene's
            centre; the cameras are named cam01, cam02, ... in the rig's order.

    Returns:
        ``out`` as a Path.
    """
    return render_missing_scenes(out, num_scenes, num_views, num_frames, size, seed, workers, progress, rig)[0]
