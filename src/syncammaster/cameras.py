"""Camera rigs: per-view (and per-frame) poses and the SynCamMaster camera embedding.

A :class:`CameraRig` holds camera-to-world matrices in the project's one convention (OpenCV camera axes, the source's
world, training units; written down in ``syncammaster.camera_conventions`` and docs/architecture.md, section 2), reads
and writes SynCamVideo camera files, and makes the model's camera input (section 1.2). Its presets come from
``syncammaster.camera_presets``, its drawing from ``syncammaster.camera_plot``. The conventions' public names
(``CameraError``, ``Intrinsics``, the Unreal conversions) and ``list_presets`` are importable from here too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from .camera_conventions import (
    SYNCAMVIDEO_FOCAL_MM,
    SYNCAMVIDEO_SENSOR_MM,
    UE_UNITS_PER_TRAINING_UNIT,
    CameraError,
    Intrinsics,
    format_ue_matrix,
    opencv_to_ue_c2w,
    parse_ue_matrix,
    read_camera_json,
    shortest_ue_centimetres,
    ue_to_opencv_c2w,
)
from .camera_plot import plot_rig
from .camera_presets import (
    DEFAULT_GENERATED_VIEWS,
    RELEASED_PRESET_CAMERAS,
    check_preset,
    generated_preset_c2w,
    list_presets,
    preset_subject,
    syncamvideo_val_file,
)
from .checks import is_int

__all__ = [
    "UE_UNITS_PER_TRAINING_UNIT",
    "CameraError",
    "CameraRig",
    "Intrinsics",
    "format_ue_matrix",
    "list_presets",
    "opencv_to_ue_c2w",
    "parse_ue_matrix",
    "ue_to_opencv_c2w",
]

# Largest allowed max|R^T R - I|: the SynCamVideo files store 6 significant digits (errors ~1e-6).
ROTATION_TOLERANCE = 1e-4
# Largest allowed deviation of a c2w bottom row from [0, 0, 0, 1].
BOTTOM_ROW_TOLERANCE = 1e-9

_FRAME_KEY = re.compile(r"frame(\d+)")
_CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # names become file names (videos/<name>.mp4)


def _default_names(num_views: int) -> list[str]:
    digits = max(2, len(str(num_views)))
    return [f"cam{i + 1:0{digits}d}" for i in range(num_views)]


def _where(name: str, frame: int | None) -> str:
    return f"camera {name}" if frame is None else f"camera {name} at frame {frame}"


class CameraRig:
    """V cameras, static or with one pose per video frame (convention: ``syncammaster.camera_conventions``).

    Args:
        c2w: (V, 4, 4) static or (V, T, 4, 4) per-frame camera-to-world matrices (OpenCV camera axes); (V, 3, 4) and
            (V, T, 3, 4) get the row [0, 0, 0, 1] appended.
        names: one unique name per view (they become file names); default cam01..camNN.
        intrinsics: optional pixel intrinsics shared by all views.
        subject: optional (3,) point the cameras look at, in world coordinates (used for plots).
    """

    def __init__(
        self,
        c2w: np.ndarray | Sequence,
        names: Sequence[str] | None = None,
        intrinsics: Intrinsics | None = None,
        subject: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        try:
            c2w = np.array(c2w, dtype=np.float64)  # copy: the rig owns its matrices
        except (TypeError, ValueError) as e:
            raise CameraError(f"camera matrices must be a numeric (V, 4, 4) or (V, T, 4, 4) array ({e})") from None
        if c2w.ndim not in (3, 4) or c2w.shape[-2:] not in ((4, 4), (3, 4)):
            raise CameraError(
                f"camera matrices must have shape (V, 4, 4) or (V, T, 4, 4) (or 3x4), got {c2w.shape}; "
                "pass one camera-to-world matrix per view (and per frame)"
            )
        if c2w.shape[0] < 1:
            raise CameraError("a rig needs at least one camera; got 0 views")
        if c2w.ndim == 4 and c2w.shape[1] < 1:
            raise CameraError("a per-frame rig needs at least one frame; got 0 frames")
        if c2w.shape[-2] == 3:
            bottom = np.broadcast_to([0.0, 0.0, 0.0, 1.0], (*c2w.shape[:-2], 1, 4))
            c2w = np.concatenate([c2w, bottom], axis=-2)  # (V, [T,] 4, 4)
        num_views = c2w.shape[0]

        if names is None:
            names = _default_names(num_views)
        names = [names] if isinstance(names, str) else list(names)
        if len(names) != num_views:
            raise CameraError(f"got {len(names)} camera names for {num_views} views; give one name per view")
        for name in names:
            if not isinstance(name, str) or not _CAMERA_NAME.fullmatch(name):
                raise CameraError(
                    f"invalid camera name {name!r}; use letters, digits, '_', '-' or '.' (names become file names)"
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise CameraError(f"camera names must be unique; {', '.join(duplicates)} appear more than once")

        _check_rigid(c2w, names)

        if intrinsics is not None and not isinstance(intrinsics, Intrinsics):
            raise CameraError(f"intrinsics must be an Intrinsics object, got {type(intrinsics).__name__}")
        if subject is not None:
            subject = np.array(subject, dtype=np.float64)
            if subject.shape != (3,) or not np.isfinite(subject).all():
                raise CameraError(f"the subject must be a finite 3D point, got {subject.tolist()}")
            subject.setflags(write=False)

        c2w.setflags(write=False)  # validated once; read-only so it stays valid
        self._c2w = c2w
        self._names = names
        self._intrinsics = intrinsics
        self._subject = subject

    # -- properties ------------------------------------------------------------------------------------------------

    @property
    def c2w(self) -> np.ndarray:
        """(V, 4, 4) static or (V, T, 4, 4) per-frame float64 camera-to-world matrices (read-only)."""
        return self._c2w

    @property
    def num_views(self) -> int:
        return self._c2w.shape[0]

    @property
    def num_frames(self) -> int | None:
        """T for a per-frame rig, None for a static one."""
        return None if self.is_static else self._c2w.shape[1]

    @property
    def is_static(self) -> bool:
        return self._c2w.ndim == 3

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def intrinsics(self) -> Intrinsics | None:
        return self._intrinsics

    @property
    def subject(self) -> np.ndarray | None:
        """(3,) world point the cameras look at, when known."""
        return self._subject

    # -- frames and views ------------------------------------------------------------------------------------------

    def c2w_at(self, frame_index: int) -> np.ndarray:
        """(V, 4, 4) camera-to-world matrices at one video frame (a static rig is the same at every frame)."""
        if frame_index < 0 or (not self.is_static and frame_index >= self._c2w.shape[1]):
            span = "any frame index >= 0" if self.is_static else f"frames 0..{self._c2w.shape[1] - 1}"
            raise CameraError(f"frame index {frame_index} is out of range; this rig has {span}")
        return self._c2w if self.is_static else self._c2w[:, frame_index]

    def _frames(self, num_frames: int) -> np.ndarray:
        """(V, num_frames, 4, 4): a static rig repeated, or a per-frame rig with exactly that many frames."""
        if not is_int(num_frames) or num_frames < 1:
            raise CameraError(f"the number of frames must be a positive integer, got {num_frames!r}")
        if self.is_static:
            return np.broadcast_to(self._c2w[:, None], (self.num_views, num_frames, 4, 4))
        if self._c2w.shape[1] != num_frames:
            raise CameraError(
                f"the rig has poses for {self._c2w.shape[1]} frames but {num_frames} frames were asked for; "
                "give a camera file with one pose per video frame (or a static rig)"
            )
        return self._c2w

    def select(self, views: int | Sequence[int | str]) -> CameraRig:
        """A rig with the first ``views`` cameras (int), or the given names / indices in that order (list)."""
        available = ", ".join(self._names)
        if is_int(views):
            if not 1 <= views <= self.num_views:
                raise CameraError(
                    f"cannot select {views} views: this rig has {self.num_views} ({available}); "
                    f"ask for 1 to {self.num_views}"
                )
            indices = list(range(int(views)))
        else:
            indices = []
            for view in views:
                if isinstance(view, str):
                    if view not in self._names:
                        raise CameraError(f"no camera named {view!r} in this rig; its cameras are {available}")
                    indices.append(self._names.index(view))
                elif is_int(view):
                    if not 0 <= view < self.num_views:
                        raise CameraError(
                            f"view index {view} is out of range; this rig has views 0..{self.num_views - 1}"
                        )
                    indices.append(int(view))
                else:
                    raise CameraError(f"views are picked by name or index, got {view!r}")
            if not indices:
                raise CameraError("a rig needs at least one camera; the selection is empty")
            if len(set(indices)) != len(indices):
                raise CameraError(f"the selection {list(views)} picks a camera twice; pick each camera once")
        return CameraRig(
            self._c2w[indices], [self._names[i] for i in indices], intrinsics=self._intrinsics, subject=self._subject
        )

    # -- the SynCamMaster embedding (docs/architecture.md, section 1.2) -------------------------------------------

    def relative_c2w(self, num_frames: int) -> np.ndarray:
        """(V, num_frames, 4, 4) poses relative to view 0 of the same frame: ``rel_v = inv(c2w_0) @ c2w_v``.

        View 0 becomes exactly the identity, as in the released code.
        """
        c2w = self._frames(num_frames)  # (V, T, 4, 4)
        w2c_0 = np.linalg.inv(c2w[0])  # (T, 4, 4)
        rel_c2w = w2c_0[None] @ c2w  # (V, T, 4, 4)
        rel_c2w[0] = np.eye(4)
        return rel_c2w

    def embedding(self, num_video_frames: int, temporal_stride: int = 4) -> torch.Tensor:
        """The (V, F_latent, 12) float32 camera input of the model, F_latent = (T - 1) // stride + 1.

        Latent frame f uses video frame f * stride; each entry is ``rel_v[:3, :4]`` flattened row-major.
        """
        if not is_int(temporal_stride) or temporal_stride < 1:
            raise CameraError(f"temporal_stride must be a positive integer, got {temporal_stride!r}")
        s = int(temporal_stride)
        if not is_int(num_video_frames) or num_video_frames < 1 or (num_video_frames - 1) % s != 0:
            if is_int(num_video_frames):
                lower = max(1, (num_video_frames - 1) // s * s + 1)  # the valid count at or below
                nearest = f"use {lower} or {lower + s}" if num_video_frames > lower else f"use {lower}"
            else:
                nearest = f"use e.g. {1 + 20 * s}"
            raise CameraError(
                f"the number of video frames must be {s}k+1 (1, {1 + s}, {1 + 2 * s}, ...), got {num_video_frames!r}; "
                f"{nearest}"
            )
        if not self.is_static and self._c2w.shape[1] != num_video_frames:
            raise CameraError(
                f"the rig has poses for {self._c2w.shape[1]} frames but the video has {num_video_frames}; "
                "a per-frame camera file needs one pose per video frame"
            )
        rel_c2w = self.relative_c2w(num_video_frames)[:, ::s]  # (V, F_latent, 4, 4)
        num_views, num_latent_frames = rel_c2w.shape[:2]
        flat = rel_c2w[:, :, :3, :4].reshape(num_views, num_latent_frames, 12)  # (V, F_latent, 12), row-major
        return torch.from_numpy(np.ascontiguousarray(flat)).to(torch.float32)

    # -- SynCamVideo files ---------------------------------------------------------------------------------------

    @classmethod
    def from_syncamvideo_json(cls, path: str | Path, cameras: Sequence[str] | None = None) -> CameraRig:
        """Read a SynCamVideo ``camera_extrinsics.json`` ({"frame{t}": {"cam{j:02d}": "<UE matrix>"}}).

        Frames are ordered by t (they must be 0..T-1), cameras by name, or as listed in ``cameras``. A file whose
        frames are all identical gives a static rig (V, 4, 4), otherwise a per-frame rig (V, T, 4, 4).
        """
        path = Path(path)
        data = read_camera_json(path, "camera file", "expected a SynCamVideo camera_extrinsics.json", expect=None)
        structure = '{"frame0": {"cam01": "[a b c 0] [d e f 0] [g h i 0] [x y z 1] ", ...}, ...}'
        if not isinstance(data, dict) or not data:
            raise CameraError(f"camera file {path} does not have the SynCamVideo structure {structure}")

        frames: dict[int, dict] = {}
        for key, value in data.items():
            match = _FRAME_KEY.fullmatch(key)
            if match is None or not isinstance(value, dict) or not value:
                raise CameraError(
                    f"camera file {path} has an unexpected entry {key!r}; expected the structure {structure}"
                )
            frames[int(match.group(1))] = value
        frame_ids = sorted(frames)
        for t, frame_id in enumerate(frame_ids):
            if frame_id != t:
                raise CameraError(
                    f"camera file {path} has no frame{t} (frames must be numbered 0..{len(frame_ids) - 1}); "
                    "number the frames contiguously from frame0"
                )

        file_names = sorted(set().union(*frames.values()))
        for t in frame_ids:
            missing = [name for name in file_names if name not in frames[t]]
            if missing:
                raise CameraError(
                    f"camera file {path}: camera {missing[0]} is missing in frame{t} (views with different frame "
                    "counts); every frame must list the same cameras"
                )
        if cameras is None:
            names = file_names
        else:
            names = [cameras] if isinstance(cameras, str) else list(cameras)
            for name in names:
                if name not in file_names:
                    raise CameraError(f"camera file {path} has no camera {name!r}; it has {', '.join(file_names)}")

        ue_rows = np.empty((len(names), len(frame_ids), 4, 4))  # (V, T, 4, 4)
        for v, name in enumerate(names):
            for t in frame_ids:
                ue_rows[v, t] = parse_ue_matrix(frames[t][name], where=f"camera {name} at frame {t} in {path}")
        if (ue_rows == ue_rows[:, :1]).all():
            ue_rows = ue_rows[:, 0]  # (V, 4, 4): every frame identical -> static rig
        try:
            return cls(ue_to_opencv_c2w(ue_rows), names)
        except CameraError as e:
            raise CameraError(f"camera file {path}: {e}") from None

    def to_syncamvideo_json(self, path: str | Path, num_frames: int | None = None) -> None:
        """Write the rig as a SynCamVideo ``camera_extrinsics.json`` (Unreal matrices, ``camera_conventions``).

        A static rig is written for ``num_frames`` identical frames (default 1); a per-frame rig writes its own T
        frames (``num_frames``, if given, must equal T).
        """
        if self.is_static:
            num_frames = 1 if num_frames is None else num_frames
        else:
            num_frames = self._c2w.shape[1] if num_frames is None else num_frames
        c2w = self._frames(num_frames)  # (V, T, 4, 4)
        ue_rows = opencv_to_ue_c2w(c2w)  # (V, T, 4, 4)
        ue_rows[..., 3, :3] = shortest_ue_centimetres(c2w[..., :3, 3])  # same values, shortest decimals
        data = {
            f"frame{t}": {name: format_ue_matrix(ue_rows[v, t]) for v, name in enumerate(self._names)}
            for t in range(num_frames)
        }
        Path(path).write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")

    # -- presets -------------------------------------------------------------------------------------------------

    @staticmethod
    def list_presets() -> dict[str, str]:
        """Preset name -> one-line description."""
        return list_presets()

    @classmethod
    def preset(cls, name: str, num_views: int | None = None) -> CameraRig:
        """A named rig (see :func:`list_presets`). ``num_views``: for the released rigs, None (all) or the first n of
        them; for the generated ones, the number of cameras (default 4)."""
        check_preset(name, num_views)
        if name in RELEASED_PRESET_CAMERAS:
            rig = _syncamvideo_val_rig()
            cameras = RELEASED_PRESET_CAMERAS[name]
            if cameras is not None:
                rig = rig.select(cameras)
            if num_views is not None and num_views > rig.num_views:
                raise CameraError(
                    f"preset {name!r} has {rig.num_views} cameras, cannot give {num_views}; "
                    f"ask for at most {rig.num_views} or use a generated preset (arc, elevation, dolly, orbit)"
                )
            return rig if num_views is None else rig.select(num_views)
        c2w = generated_preset_c2w(name, DEFAULT_GENERATED_VIEWS if num_views is None else int(num_views))
        return cls(c2w, subject=preset_subject())

    @classmethod
    def load(cls, spec: str | Path, num_views: int | None = None) -> CameraRig:
        """A preset name or a path to a SynCamVideo ``camera_extrinsics.json`` (first ``num_views`` cameras)."""
        if isinstance(spec, str) and spec in list_presets():
            return cls.preset(spec, num_views)
        path = Path(spec)
        if not path.is_file():
            raise CameraError(
                f"{str(spec)!r} is neither a camera preset ({', '.join(list_presets())}) nor an existing "
                "file; give a preset name or a path to a SynCamVideo camera_extrinsics.json"
            )
        rig = cls.from_syncamvideo_json(path)
        return rig if num_views is None else rig.select(num_views)

    # -- summary and plot ----------------------------------------------------------------------------------------

    def _summary_numbers(self) -> tuple[float, float]:
        """(largest distance between camera centres, largest angle between optical axes in degrees) at frame 0."""
        c2w = self.c2w_at(0)  # (V, 4, 4)
        centres = c2w[:, :3, 3]  # (V, 3)
        axes = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=-1, keepdims=True)  # (V, 3) optical axes
        baseline = float(np.linalg.norm(centres[:, None] - centres[None], axis=-1).max())
        angle = float(np.degrees(np.arccos(np.clip(axes @ axes.T, -1.0, 1.0))).max())
        return baseline, angle

    def to_dict(self) -> dict:
        """A JSON-friendly summary (for the CLI)."""
        baseline, angle = self._summary_numbers()
        return {
            "num_views": self.num_views,
            "num_frames": self.num_frames,
            "static": self.is_static,
            "names": self.names,
            "baseline_units": baseline,
            "max_angle_deg": angle,
            "subject": None if self._subject is None else self._subject.tolist(),
            "intrinsics": None if self._intrinsics is None else asdict(self._intrinsics),
        }

    def __repr__(self) -> str:
        baseline, angle = self._summary_numbers()
        frames = "static" if self.is_static else f"{self.num_frames} frames"
        views = "1 view" if self.num_views == 1 else f"{self.num_views} views"
        names = ", ".join(self._names) if self.num_views <= 4 else f"{self._names[0]}..{self._names[-1]}"
        return f"CameraRig({views} ({names}), {frames}, baseline {baseline:.2f} units, max angle {angle:.1f} deg)"

    def display_frame(self) -> tuple[np.ndarray, tuple[str, str, str]]:
        """The (3, 3) map from world coordinates to the right-handed frame drawings use, and that frame's axis names.

        A left-handed world (det R < 0, e.g. Unreal's X forward, Y right, Z up) would look mirrored in a drawing's
        right-handed axes, so its Y axis is negated: (X, -Y, Z) is right-handed with Z up. A right-handed world is
        drawn as it is.
        """
        if np.linalg.det(self._c2w.reshape(-1, 4, 4)[0, :3, :3]) < 0:
            return np.diag([1.0, -1.0, 1.0]), ("X forward", "-Y (left)", "Z up")
        return np.eye(3), ("world x", "world y", "world z")

    def frustum_corners(self, depth: float, frame_index: int = 0) -> np.ndarray:
        """(V, 4, 3) world corners of each camera's image rectangle ``depth`` along its optical axis: top-left,
        top-right, bottom-right, bottom-left. The field of view is the intrinsics', else SynCamVideo's square one."""
        # Image-plane half extents per unit depth.
        if self._intrinsics is not None:
            half_x = self._intrinsics.width / 2 / self._intrinsics.fx
            half_y = self._intrinsics.height / 2 / self._intrinsics.fy
        else:
            half_x = half_y = SYNCAMVIDEO_SENSOR_MM / 2 / SYNCAMVIDEO_FOCAL_MM
        # Corners in camera coordinates (x right, y down, z forward).
        corners_cam = depth * np.array(
            [[-half_x, -half_y, 1.0], [half_x, -half_y, 1.0], [half_x, half_y, 1.0], [-half_x, half_y, 1.0]]
        )  # (4, 3)
        c2w = self.c2w_at(frame_index)  # (V, 4, 4)
        return np.einsum("vij,kj->vki", c2w[:, :3, :3], corners_cam) + c2w[:, None, :3, 3]  # (V, 4, 3)

    def plot(self, path: str | Path | BinaryIO, title: str | None = None) -> None:
        """Save a 3D PNG of the camera frustums (frame 0; centre paths for a per-frame rig) to a path or binary file."""
        plot_rig(self, path, title)


def _check_rigid(c2w: np.ndarray, names: list[str]) -> None:
    """Raise CameraError for the first non-finite, non-rigid or differently-handed matrix of (V, [T,] 4, 4)."""
    per_frame = c2w.ndim == 4
    frames = c2w if per_frame else c2w[:, None]  # (V, T, 4, 4)

    def where(v: int, t: int) -> str:
        return _where(names[v], t if per_frame else None)

    bad = ~np.isfinite(frames).all(axis=(-2, -1))  # (V, T)
    if bad.any():
        v, t = np.argwhere(bad)[0]
        raise CameraError(f"{where(v, t)} has a non-finite value (nan or inf); camera matrices must be finite numbers")
    bottom_error = np.abs(frames[..., 3, :] - [0.0, 0.0, 0.0, 1.0]).max(axis=-1)  # (V, T)
    if (bottom_error > BOTTOM_ROW_TOLERANCE).any():
        v, t = np.argwhere(bottom_error > BOTTOM_ROW_TOLERANCE)[0]
        raise CameraError(
            f"{where(v, t)} has bottom row {frames[v, t, 3].tolist()}, not [0, 0, 0, 1]; "
            "camera matrices must be rigid transforms"
        )
    rotations = frames[..., :3, :3]  # (V, T, 3, 3)
    orthonormal_error = np.abs(np.swapaxes(rotations, -1, -2) @ rotations - np.eye(3)).max(axis=(-2, -1))  # (V, T)
    if (orthonormal_error > ROTATION_TOLERANCE).any():
        v, t = np.argwhere(orthonormal_error > ROTATION_TOLERANCE)[0]
        raise CameraError(
            f"{where(v, t)} has a non-orthonormal rotation (max |R^T R - I| = {orthonormal_error[v, t]:.3g}); "
            "camera matrices must be rigid transforms"
        )
    handedness = np.sign(np.linalg.det(rotations))  # (V, T)
    if (handedness != handedness[0, 0]).any():
        v, t = np.argwhere(handedness != handedness[0, 0])[0]
        raise CameraError(
            f"{where(v, t)} has det R = {handedness[v, t]:+.0f} but {where(0, 0)} has {handedness[0, 0]:+.0f}; "
            "all cameras of a rig must use the same world frame (same handedness)"
        )


@functools.lru_cache(maxsize=1)
def _syncamvideo_val_rig() -> CameraRig:
    """The 10 SynCamVideo validation cameras shipped with the package (static rig, subject known)."""
    with syncamvideo_val_file() as path:
        rig = CameraRig.from_syncamvideo_json(path)
    return CameraRig(rig.c2w, rig.names, subject=preset_subject())
