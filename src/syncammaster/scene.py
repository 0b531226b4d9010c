"""One scene folder in the SynCamVideo layout (docs/architecture.md, section 3.1): synchronized videos, cameras,
intrinsics, prompt.

```
scene/
  videos/cam01.mp4 ... camNN.mp4      one H.264 video per camera, same length and size
  cameras/camera_extrinsics.json      Unreal matrices (see syncammaster.camera_conventions)
  cameras/intrinsics.json             optional pixel intrinsics of the stored videos
  prompt.txt                          optional caption
  grid.mp4                            optional side-by-side preview of all views
```

Writing is all-or-nothing: files are written into a temporary folder next to the output folder and then moved in;
existing files are never overwritten unless asked, and a failure leaves the output folder as it was.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .atomic import BACKUP_DIR, staging_folder
from .cameras import CameraRig, Intrinsics
from .video import DEFAULT_FPS, VideoError, check_fps, check_frames, read_clip, read_video, write_video

__all__ = ["Scene", "SceneError", "read_video", "tile_videos", "write_video"]

GRID_MAX_COLUMNS = 4

EXTRINSICS_FILE = "cameras/camera_extrinsics.json"
INTRINSICS_FILE = "cameras/intrinsics.json"
PROMPT_FILE = "prompt.txt"
GRID_FILE = "grid.mp4"


class SceneError(ValueError):
    """An invalid scene, video or scene folder. The message is one line: the problem and the fix."""


def video_file(name: str) -> str:
    """Path of a camera's video inside a scene folder."""
    return f"videos/{name}.mp4"


# ----------------------------------------------------------------------------------------------------------------
# Videos
# ----------------------------------------------------------------------------------------------------------------


def scene_files(camera_names: list[str]) -> list[str]:
    """Relative paths of every file a full scene folder holds (videos, cameras, intrinsics, prompt, grid)."""
    return [*(video_file(name) for name in camera_names), EXTRINSICS_FILE, INTRINSICS_FILE, PROMPT_FILE, GRID_FILE]


def _check_frames(frames: np.ndarray, what: str) -> None:
    try:
        check_frames(frames, what)
    except VideoError as e:
        raise SceneError(str(e)) from None


def _check_fps(fps: float, what: str) -> None:
    try:
        check_fps(fps, what)
    except VideoError as e:
        raise SceneError(str(e)) from None


def tile_videos(videos: list[np.ndarray]) -> np.ndarray:
    """Tile V videos (T, H, W, 3) into one: a single row for up to 4 views, else rows of 4 (blank cells black).

    Returns:
        (T, rows * H, min(V, 4) * W, 3) uint8.
    """
    if not videos:
        raise SceneError("tile_videos needs at least one video")
    for v, video in enumerate(videos):
        _check_frames(video, f"video {v}")
        if video.shape != videos[0].shape:
            raise SceneError(f"video {v} has shape {video.shape} but video 0 has {videos[0].shape}; tile equal videos")
    num_frames, height, width, _ = videos[0].shape
    columns = min(len(videos), GRID_MAX_COLUMNS)
    rows = math.ceil(len(videos) / columns)
    grid = np.zeros((num_frames, rows * height, columns * width, 3), dtype=np.uint8)  # (T, rows*H, columns*W, 3)
    for v, video in enumerate(videos):
        row, column = divmod(v, columns)
        grid[:, row * height : (row + 1) * height, column * width : (column + 1) * width] = video
    return grid


# ----------------------------------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """V synchronized videos of one scene with their cameras.

    Args:
        videos: V arrays (T, H, W, 3) uint8, in the order of ``rig.names``.
        rig: the cameras; a per-frame rig must have T frames.
        intrinsics: pixel intrinsics of the videos as stored (defaults to ``rig.intrinsics``).
        prompt: the caption.
        fps: frames per second of the videos.
    """

    videos: list[np.ndarray]
    rig: CameraRig
    intrinsics: Intrinsics | None = None
    prompt: str | None = None
    fps: float = DEFAULT_FPS

    def __post_init__(self) -> None:
        if self.intrinsics is None and isinstance(self.rig, CameraRig):
            self.intrinsics = self.rig.intrinsics
        self.check()

    @property
    def num_frames(self) -> int:
        return self.videos[0].shape[0]

    def check(self) -> None:
        """Raise SceneError if the videos, cameras and intrinsics do not fit together."""
        if not isinstance(self.rig, CameraRig):
            raise SceneError(f"a scene needs a CameraRig, got {type(self.rig).__name__}")
        if len(self.videos) != self.rig.num_views:
            raise SceneError(
                f"the scene has {len(self.videos)} videos but the rig has {self.rig.num_views} cameras; "
                "give one video per camera"
            )
        for name, video in zip(self.rig.names, self.videos, strict=True):
            _check_frames(video, f"video {name}")
            if video.shape != self.videos[0].shape:
                raise SceneError(
                    f"video {name} has shape {video.shape} but video {self.rig.names[0]} has {self.videos[0].shape}; "
                    "all views must have the same length and size"
                )
        num_frames, height, width, _ = self.videos[0].shape
        if not self.rig.is_static and self.rig.num_frames != num_frames:
            raise SceneError(
                f"the rig has poses for {self.rig.num_frames} frames but the videos have {num_frames}; "
                "give one pose per video frame or a static rig"
            )
        if self.intrinsics is not None and (self.intrinsics.width, self.intrinsics.height) != (width, height):
            raise SceneError(
                f"the intrinsics are for {self.intrinsics.width}x{self.intrinsics.height} images but the videos are "
                f"{width}x{height}; scale the intrinsics to the stored videos (Intrinsics.scaled)"
            )
        _check_fps(self.fps, "the scene")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise SceneError(f"the prompt must be a string, got {type(self.prompt).__name__}")

    def write(
        self,
        out_dir: str | Path,
        grid: bool = True,
        extra_files: dict[str, bytes] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the scene folder; all or nothing, and existing files are kept unless ``overwrite``.

        Args:
            out_dir: the scene folder (created if needed; it may already hold other files).
            grid: also write ``grid.mp4``, all views side by side.
            extra_files: more files, relative path -> content (e.g. {"rig.png": png_bytes}).
            overwrite: replace files of the same names that are already in ``out_dir``.

        Returns:
            ``out_dir`` as a Path.
        """
        # 1. Check inputs and list every file to be written: relative path -> function writing it to a path.
        self.check()
        out_dir = Path(out_dir)
        writers: dict[str, Callable[[Path], None]] = {
            video_file(name): functools.partial(write_video, frames=video, fps=self.fps)
            for name, video in zip(self.rig.names, self.videos, strict=True)
        }
        # A static rig is written once per video frame, as the SynCamVideo files are.
        writers[EXTRINSICS_FILE] = functools.partial(self.rig.to_syncamvideo_json, num_frames=self.num_frames)
        if self.intrinsics is not None:
            writers[INTRINSICS_FILE] = self.intrinsics.to_json
        if self.prompt is not None:
            writers[PROMPT_FILE] = functools.partial(Path.write_text, data=self.prompt + "\n", encoding="utf-8")
        if grid:
            writers[GRID_FILE] = functools.partial(write_video, frames=tile_videos(self.videos), fps=self.fps)
        for rel, content in (extra_files or {}).items():
            rel_path = PurePosixPath(rel)
            if rel_path.is_absolute() or ".." in rel_path.parts or not rel_path.parts or "\\" in rel:
                raise SceneError(f"extra file name {rel!r} must be a relative path inside the scene folder")
            if str(rel_path) in writers:
                raise SceneError(f"extra file {rel!r} would replace the scene's own {rel_path}; rename it")
            if not isinstance(content, (bytes, bytearray)):
                raise SceneError(f"extra file {rel!r} must be bytes, got {type(content).__name__}")
            writers[str(rel_path)] = functools.partial(Path.write_bytes, data=bytes(content))

        # 2. Refuse to replace anything unless asked.
        if out_dir.exists() and not out_dir.is_dir():
            raise SceneError(f"{out_dir} exists and is not a folder; choose another output folder")
        for rel in writers:
            target = out_dir / rel
            if target.is_dir():
                raise SceneError(f"{target} is a folder where the scene needs a file; choose another output folder")
            if target.exists() and not overwrite:
                raise SceneError(f"{target} already exists; choose another output folder (nothing was written)")

        # 3. Write everything into a temporary folder on the same filesystem, then move the files in.
        # The staging folder is locked while in use; one a killed write left is removed by the next (atomic module).
        anchor = out_dir.absolute().parent
        while not anchor.exists():
            anchor = anchor.parent
        with staging_folder(out_dir, anchor) as staging:
            for rel, write in writers.items():
                path = staging / "new" / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                write(path)
            _move_all(staging / "new", out_dir, list(writers), backup=staging / BACKUP_DIR)
        return out_dir

    @classmethod
    def read(cls, scene_dir: str | Path) -> Scene:
        """Read a scene folder: cameras (CameraError if invalid), intrinsics and prompt if present, and one video
        per camera (SceneError if one is missing or unreadable)."""
        scene_dir = Path(scene_dir)
        if not scene_dir.is_dir():
            raise SceneError(f"scene folder {scene_dir} does not exist")
        extrinsics = scene_dir / EXTRINSICS_FILE
        if not extrinsics.is_file():
            raise SceneError(f"scene {scene_dir} has no {EXTRINSICS_FILE}; a scene folder needs its cameras")
        rig = CameraRig.from_syncamvideo_json(extrinsics)
        intrinsics = (
            Intrinsics.from_json(scene_dir / INTRINSICS_FILE) if (scene_dir / INTRINSICS_FILE).is_file() else None
        )
        prompt = None
        if (scene_dir / PROMPT_FILE).is_file():
            prompt = (scene_dir / PROMPT_FILE).read_text(encoding="utf-8")
            prompt = prompt[:-1] if prompt.endswith("\n") else prompt  # the newline write() adds
        videos, rates = [], []
        for name in rig.names:
            path = scene_dir / video_file(name)
            if not path.is_file():
                raise SceneError(f"scene {scene_dir} has no video for camera {name} ({video_file(name)} is missing)")
            try:
                clip = read_clip(path)  # every frame, at the stream's rate
            except VideoError as e:
                raise SceneError(str(e)) from None
            videos.append(clip.frames)
            rates.append(clip.fps)
        if intrinsics is not None:
            rig = CameraRig(rig.c2w, rig.names, intrinsics=intrinsics, subject=rig.subject)
        try:
            return cls(videos, rig, intrinsics, prompt, rates[0])
        except SceneError as e:
            raise SceneError(f"scene {scene_dir}: {e}") from None


def _move_all(staged: Path, out_dir: Path, rel_paths: list[str], backup: Path) -> None:
    """Move ``staged / rel`` to ``out_dir / rel`` for each path; files replaced on the way wait under ``backup``.
    On any failure everything is put back as it was and the error re-raised."""
    created_dirs: list[Path] = []
    moved: list[Path] = []
    replaced: list[tuple[Path, Path]] = []  # (backup copy, original place)
    try:
        for rel in rel_paths:
            target = out_dir / rel
            missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
            for directory in reversed(missing):
                directory.mkdir()
                created_dirs.append(directory)
            if target.exists():  # only reached with overwrite=True: keep the old file until the end
                saved = backup / rel
                saved.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, saved)
                replaced.append((saved, target))
            os.replace(staged / rel, target)
            moved.append(target)
    except BaseException:
        for target in reversed(moved):
            target.unlink(missing_ok=True)
        for saved, target in reversed(replaced):
            os.replace(saved, target)
        for directory in reversed(created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass  # not empty: someone else wrote there meanwhile; leave it
        raise
