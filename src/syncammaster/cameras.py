"""Camera rigs: per-view (and per-frame) poses, intrinsics, presets and the SynCamMaster camera embedding.

Camera convention (the one place it is written down)
----------------------------------------------------
A :class:`CameraRig` holds camera-to-world matrices ``c2w`` whose *camera* axes are OpenCV's: x right, y down,
z forward (the optical axis). Column ``j < 3`` of a ``c2w`` is camera axis ``j`` expressed in world coordinates and
column 3 is the camera centre. The *world* frame is the one of the source. For SynCamVideo files and for the presets
generated here it is Unreal Engine's world: X forward, Y right, Z up (a left-handed frame), with lengths in "training
units" = UE centimetres / 200 (the released SynCamMaster code divides by 200, so 1 unit = 2 m).

Because that world is left-handed while the OpenCV camera axes are right-handed, the rotation block of such a ``c2w``
has determinant -1. That is expected: validation checks that rotations are orthonormal (R^T R = I, |det R| = 1) and
that all cameras share one handedness, not that det R = +1. The relative embedding fed to the model
(``inv(c2w_0) @ c2w_v``) does not depend on the choice of world frame.

Unreal's own matrices, as written in a SynCamVideo ``camera_extrinsics.json``, are in row-vector form: row 0 is the
camera's forward axis (UE X), row 1 its right axis (UE Y), row 2 its up axis (UE Z), row 3 its location in cm, all in
UE world coordinates. :func:`ue_to_opencv_c2w` and :func:`opencv_to_ue_c2w` convert between the two.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

__all__ = [
    "CameraError",
    "CameraRig",
    "Intrinsics",
    "format_ue_matrix",
    "list_presets",
    "opencv_to_ue_c2w",
    "parse_ue_matrix",
    "ue_to_opencv_c2w",
]

# Unreal Engine centimetres per training unit: the released SynCamMaster code divides UE translations by 200, so the
# model was trained with 1 unit = 2 m.
UE_UNITS_PER_TRAINING_UNIT = 200.0

# SynCamVideo render camera: 24 mm lens on a 23.76 mm x 23.76 mm sensor, 1280 x 1280 renders.
SYNCAMVIDEO_FOCAL_MM = 24.0
SYNCAMVIDEO_SENSOR_MM = 23.76

# Largest allowed max|R^T R - I|: the SynCamVideo files store 6 significant digits (errors ~1e-6).
ROTATION_TOLERANCE = 1e-4
# Largest allowed deviation of a c2w bottom row from [0, 0, 0, 1].
BOTTOM_ROW_TOLERANCE = 1e-9

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
_FRAME_KEY = re.compile(r"frame(\d+)")
_CAMERA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # names become file names (videos/<name>.mp4)
_UE_ROW = re.compile(r"\[([^\[\]]*)\]")


class CameraError(ValueError):
    """An invalid camera, rig, intrinsics or camera file. The message is one line: the problem and the fix."""


# ----------------------------------------------------------------------------------------------------------------
# Unreal <-> OpenCV
# ----------------------------------------------------------------------------------------------------------------


def ue_to_opencv_c2w(ue_rows: np.ndarray) -> np.ndarray:
    """Convert Unreal row-vector camera matrices to OpenCV-axis camera-to-world matrices in training units.

    This is exactly the conversion of the released SynCamMaster code.

    Args:
        ue_rows: (..., 4, 4) matrices as written in a SynCamVideo file: rows = camera forward (UE X), right (UE Y),
            up (UE Z), location in cm; all in UE world coordinates.

    Returns:
        (..., 4, 4) float64 ``c2w``: columns = camera x (right), y (down), z (forward), centre; world = UE axes,
        lengths in UE cm / 200.
    """
    ue_rows = np.asarray(ue_rows, dtype=np.float64)
    if ue_rows.ndim < 2 or ue_rows.shape[-2:] != (4, 4):
        raise CameraError(f"an Unreal camera matrix must have shape (..., 4, 4), got {ue_rows.shape}")
    # Row-vector -> column-vector form: columns become forward, right, up, location.
    c2w = np.swapaxes(ue_rows, -1, -2)  # (..., 4, 4)
    # Permute columns to OpenCV camera axes: x := UE right (column 1), y := UE up (column 2), z := UE forward
    # (column 0); the location column stays last. Fancy indexing copies, so `ue_rows` is never modified.
    c2w = c2w[..., [1, 2, 0, 3]]
    # OpenCV's y points down while UE's up points up: flip that axis.
    c2w[..., :3, 1] *= -1.0
    # Unit change: UE centimetres -> training units.
    c2w[..., :3, 3] /= UE_UNITS_PER_TRAINING_UNIT
    return c2w


def opencv_to_ue_c2w(c2w: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`ue_to_opencv_c2w`: (..., 4, 4) OpenCV c2w -> (..., 4, 4) Unreal row-vector matrices."""
    c2w = np.array(c2w, dtype=np.float64)  # copy: modified in place below
    if c2w.ndim < 2 or c2w.shape[-2:] != (4, 4):
        raise CameraError(f"a camera-to-world matrix must have shape (..., 4, 4), got {c2w.shape}")
    # Unit change: training units -> UE centimetres.
    c2w[..., :3, 3] *= UE_UNITS_PER_TRAINING_UNIT
    # OpenCV y (down) -> UE up.
    c2w[..., :3, 1] *= -1.0
    # Undo the column permutation: UE forward is OpenCV z (column 2), right is x (column 0), up is -y (column 1).
    c2w = c2w[..., [2, 0, 1, 3]]
    # Column-vector -> Unreal's row-vector form.
    return np.ascontiguousarray(np.swapaxes(c2w, -1, -2))


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _format_float(x: float) -> str:
    # Shortest positional string that reads back to the same float: write -> read is exact.
    return np.format_float_positional(float(x), unique=True, trim="-")


def format_ue_matrix(m: np.ndarray) -> str:
    """Format a (4, 4) Unreal row-vector matrix the SynCamVideo way: ``"[a b c d] [e f g h] [i j k l] [x y z w] "``."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (4, 4):
        raise CameraError(f"an Unreal camera matrix must have shape (4, 4), got {m.shape}")
    return "".join("[" + " ".join(_format_float(x) for x in row) + "] " for row in m)


def parse_ue_matrix(text: str, where: str = "camera matrix") -> np.ndarray:
    """Parse a SynCamVideo matrix string such as ``"[0.866025 -0.5 0 0] [0.5 0.866025 -0 0] [0 0 1 0] [12960.2 1250
    -570 1] "`` into a (4, 4) float64 array (Unreal row-vector form, unchanged).

    Args:
        text: the string from the file.
        where: what the string is, for error messages (e.g. "camera cam03 at frame 5 in cams.json").
    """
    expected = "expected 4 bracketed rows of 4 numbers like '[a b c 0] [d e f 0] [g h i 0] [x y z 1]'"
    if not isinstance(text, str):
        raise CameraError(f"{where} is a {type(text).__name__}, not a matrix string; {expected}")
    shown = text if len(text) <= 80 else text[:77] + "..."
    rows = _UE_ROW.findall(text)
    leftover = _UE_ROW.sub("", text).strip()
    if len(rows) != 4 or leftover:
        raise CameraError(f"{where} is malformed ({shown!r}); {expected}")
    matrix = np.empty((4, 4), dtype=np.float64)
    for i, row in enumerate(rows):
        fields = row.split()
        if len(fields) != 4:
            raise CameraError(f"{where} is malformed: row {i} has {len(fields)} numbers ({shown!r}); {expected}")
        for j, field in enumerate(fields):
            try:
                matrix[i, j] = float(field)
            except ValueError:
                raise CameraError(f"{where} is malformed: {field!r} is not a number ({shown!r}); {expected}") from None
    if not np.isfinite(matrix).all():
        raise CameraError(f"{where} has a non-finite value ({shown!r}); camera matrices must be finite numbers")
    return matrix


# ----------------------------------------------------------------------------------------------------------------
# Intrinsics
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Intrinsics:
    """Pinhole intrinsics in pixels for images of ``width`` x ``height``.

    Pixel (row i, column j) covers [j, j+1) x [i, i+1), so the image centre is (width / 2, height / 2).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for key in ("width", "height"):
            value = getattr(self, key)
            if not _is_int(value) or value <= 0:
                raise CameraError(f"intrinsics {key} must be a positive integer number of pixels, got {value!r}")
            setattr(self, key, int(value))
        for key in ("fx", "fy", "cx", "cy"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise CameraError(f"intrinsics {key} must be a number of pixels, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise CameraError(f"intrinsics {key} must be finite and positive, got {value!r}")
            setattr(self, key, float(value))

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 calibration matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def training(cls, width: int, height: int) -> Intrinsics:
        """The intrinsics the released checkpoint was trained with, for a video of ``width`` x ``height``.

        SynCamVideo renders are square (24 mm lens, 23.76 mm sensor); training frames scale the render so the
        *shorter* output side fits, then centre-crop the longer one (1280x1280 -> 832x832 -> 480x832). The square's
        side therefore becomes max(width, height) pixels, which sets the focal length.
        """
        return cls.centered(width, height, SYNCAMVIDEO_FOCAL_MM / SYNCAMVIDEO_SENSOR_MM)

    @classmethod
    def centered(cls, width: int, height: int, focal_per_side: float) -> Intrinsics:
        """Square pixels, principal point at the image centre, fx = fy = focal_per_side * max(width, height).

        The camera model of training data made by scaling a square render so its shorter output side fits and
        centre-cropping the longer one: ``focal_per_side`` is the render's focal length over its side.
        """
        focal = focal_per_side * max(width, height)
        return cls(width, height, focal, focal, width / 2, height / 2)

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The intrinsics after resizing the images (no crop) to ``width`` x ``height``."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(width, height, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=4) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> Intrinsics:
        path = Path(path)
        keys = ("width", "height", "fx", "fy", "cx", "cy")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise CameraError(f"cannot read intrinsics file {path}: {e.strerror or e}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CameraError(f"intrinsics file {path} is not valid JSON ({e}); expected keys {keys}") from None
        if not isinstance(data, dict):
            raise CameraError(f"intrinsics file {path} must hold a JSON object with keys {', '.join(keys)}")
        missing = [k for k in keys if k not in data]
        unknown = sorted(set(data) - set(keys))
        if missing or unknown:
            raise CameraError(
                f"intrinsics file {path} has missing keys {missing} / unknown keys {unknown}; "
                f"expected exactly {', '.join(keys)}"
            )
        try:
            return cls(**{k: data[k] for k in keys})
        except CameraError as e:
            raise CameraError(f"intrinsics file {path}: {e}") from None


# ----------------------------------------------------------------------------------------------------------------
# CameraRig
# ----------------------------------------------------------------------------------------------------------------


def _default_names(num_views: int) -> list[str]:
    digits = max(2, len(str(num_views)))
    return [f"cam{i + 1:0{digits}d}" for i in range(num_views)]


def _where(name: str, frame: int | None) -> str:
    return f"camera {name}" if frame is None else f"camera {name} at frame {frame}"


class CameraRig:
    """V cameras, static or with one pose per video frame (convention: module docstring).

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
        if not _is_int(num_frames) or num_frames < 1:
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
        if _is_int(views):
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
                elif _is_int(view):
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
        if not _is_int(temporal_stride) or temporal_stride < 1:
            raise CameraError(f"temporal_stride must be a positive integer, got {temporal_stride!r}")
        s = int(temporal_stride)
        if not _is_int(num_video_frames) or num_video_frames < 1 or (num_video_frames - 1) % s != 0:
            if _is_int(num_video_frames):
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
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise CameraError(f"cannot read camera file {path}: {e.strerror or e}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CameraError(
                f"camera file {path} is not valid JSON ({e}); expected a SynCamVideo camera_extrinsics.json"
            ) from None
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
        """Write the rig as a SynCamVideo ``camera_extrinsics.json`` (Unreal matrices, see the module docstring).

        A static rig is written for ``num_frames`` identical frames (default 1); a per-frame rig writes its own T
        frames (``num_frames``, if given, must equal T).
        """
        if self.is_static:
            num_frames = 1 if num_frames is None else num_frames
        else:
            num_frames = self._c2w.shape[1] if num_frames is None else num_frames
        c2w = self._frames(num_frames)  # (V, T, 4, 4)
        ue_rows = opencv_to_ue_c2w(c2w)  # (V, T, 4, 4)
        ue_rows[..., 3, :3] = _shortest_ue_centimetres(c2w[..., :3, 3])  # same values, shortest decimals
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
        if name not in _PRESET_DESCRIPTIONS:
            raise CameraError(
                f"unknown camera preset {name!r}; choose one of {', '.join(_PRESET_DESCRIPTIONS)} "
                "or give a path to a SynCamVideo camera_extrinsics.json"
            )
        if num_views is not None and (not _is_int(num_views) or num_views < 1):
            raise CameraError(f"num_views must be a positive integer, got {num_views!r}")
        if name in _RELEASED_PRESET_CAMERAS:
            rig = _syncamvideo_val_rig()
            cameras = _RELEASED_PRESET_CAMERAS[name]
            if cameras is not None:
                rig = rig.select(cameras)
            if num_views is not None and num_views > rig.num_views:
                raise CameraError(
                    f"preset {name!r} has {rig.num_views} cameras, cannot give {num_views}; "
                    f"ask for at most {rig.num_views} or use a generated preset (arc, elevation, dolly, orbit)"
                )
            return rig if num_views is None else rig.select(num_views)
        return _generated_preset(name, DEFAULT_GENERATED_VIEWS if num_views is None else int(num_views))

    @classmethod
    def load(cls, spec: str | Path, num_views: int | None = None) -> CameraRig:
        """A preset name or a path to a SynCamVideo ``camera_extrinsics.json`` (first ``num_views`` cameras)."""
        if isinstance(spec, str) and spec in _PRESET_DESCRIPTIONS:
            return cls.preset(spec, num_views)
        path = Path(spec)
        if not path.is_file():
            raise CameraError(
                f"{str(spec)!r} is neither a camera preset ({', '.join(_PRESET_DESCRIPTIONS)}) nor an existing "
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
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        flip, axis_names = self.display_frame()
        c2w = self.c2w_at(0)  # (V, 4, 4)
        centres = c2w[:, :3, 3]  # (V, 3)
        points = [centres] if self._subject is None else [centres, self._subject[None]]
        if not self.is_static:
            points.append(self._c2w[:, :, :3, 3].reshape(-1, 3))
        all_points = np.concatenate(points) @ flip.T  # (N, 3) display coordinates
        lo, hi = all_points.min(0), all_points.max(0)
        extent = max(float((hi - lo).max()), 0.5)
        depth = 0.15 * extent  # frustum length along the optical axis
        frustums = self.frustum_corners(depth) @ flip.T  # (V, 4, 3) display coordinates

        fig = Figure(figsize=(7, 6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(projection="3d")
        colors = [f"C{v % 10}" for v in range(self.num_views)]
        for v, name in enumerate(self._names):
            rotation, centre = c2w[v, :3, :3], c2w[v, :3, 3]
            corners = frustums[v]  # (4, 3)
            apex = centre @ flip.T  # (3,)
            for corner in corners:
                ax.plot(*np.stack([apex, corner]).T, color=colors[v], linewidth=1.0)
            outline = np.concatenate([corners, corners[:1]])  # (5, 3) closed image-plane outline
            ax.plot(*outline.T, color=colors[v], linewidth=1.0)
            ax.plot(*corners[:2].T, color="black", linewidth=3.0)  # the image's top ("up") edge
            if self._subject is not None:
                axis = rotation[:, 2] / np.linalg.norm(rotation[:, 2])
                reach = max(float((self._subject - centre) @ axis), depth)
                ax.plot(*np.stack([apex, (centre + reach * axis) @ flip.T]).T, color=colors[v], linestyle=":")
            if not self.is_static:
                ax.plot(*(self._c2w[v, :, :3, 3] @ flip.T).T, color=colors[v], linestyle="--", linewidth=0.8)
            ax.text(*apex, f" {name}", color=colors[v], fontsize=8)
        if self._subject is not None:
            ax.scatter(*(self._subject @ flip.T), color="red", marker="*", s=120, label="subject")
            ax.legend(loc="upper right")

        # Equal scaling on all three axes: a cube around the drawn points.
        mid = (lo + hi) / 2
        half = 0.5 * extent + depth
        ax.set_xlim(mid[0] - half, mid[0] + half)
        ax.set_ylim(mid[1] - half, mid[1] + half)
        ax.set_zlim(mid[2] - half, mid[2] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.set_xlabel(axis_names[0])
        ax.set_ylabel(axis_names[1])
        ax.set_zlabel(axis_names[2])
        ax.view_init(elev=20, azim=-155)  # from behind and above, as for UE (X forward, -Y left, Z up)
        ax.set_title(title if title is not None else repr(self), fontsize=9)
        fig.savefig(path, format="png", dpi=120)


def _shortest_ue_centimetres(t: np.ndarray) -> np.ndarray:
    """UE centimetres for translations ``t`` in training units, each the shortest decimal x with x / 200 == t.

    ``t * 200`` may differ from the number the file held by one ulp (12919.999999999998 for 12920); the shortest
    decimal that divides back to exactly ``t`` keeps files readable and write -> read bit-exact. Where no float
    divides back exactly (rare), ``t * 200`` is kept: read -> write is then within one ulp.
    """
    t = np.asarray(t, dtype=np.float64)
    ue_cm = t * UE_UNITS_PER_TRAINING_UNIT
    flat_t, flat_cm = t.reshape(-1), ue_cm.reshape(-1)
    for i, (units, centimetres) in enumerate(zip(flat_t, flat_cm, strict=True)):
        for digits in range(1, 18):
            candidate = float(f"{centimetres:.{digits}g}")
            if candidate / UE_UNITS_PER_TRAINING_UNIT == units:
                flat_cm[i] = candidate
                break
    return flat_cm.reshape(t.shape)


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


# ----------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------

# Released pairs, in the view order of the released inference code: its camera tensor puts the "tgt" camera first
# (view 0, identity) and the "cond" camera second (az: tgt cam01 / cond cam03, el: cam03 / cam07, dis: cam09 / cam10).
_RELEASED_PRESET_CAMERAS: dict[str, list[str] | None] = {
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


@functools.lru_cache(maxsize=1)
def _syncamvideo_val_rig() -> CameraRig:
    """The 10 SynCamVideo validation cameras shipped with the package (static rig, subject known)."""
    resource = importlib.resources.files("syncammaster") / "presets" / _PACKAGED_SYNCAMVIDEO_FILE
    with importlib.resources.as_file(resource) as path:
        rig = CameraRig.from_syncamvideo_json(path)
    subject = np.array(PRESET_SUBJECT_UE_CM) / UE_UNITS_PER_TRAINING_UNIT  # UE cm -> training units
    return CameraRig(rig.c2w, rig.names, subject=subject)


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


def _generated_preset(name: str, num_views: int) -> CameraRig:
    """Cameras built in Unreal's world and converted with ``ue_to_opencv_c2w``, so exports read like UE files."""
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
    subject = np.array(PRESET_SUBJECT_UE_CM) / UE_UNITS_PER_TRAINING_UNIT  # UE cm -> training units
    return CameraRig(ue_to_opencv_c2w(ue_rows), subject=subject)
