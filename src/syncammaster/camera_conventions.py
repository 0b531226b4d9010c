"""Camera conventions: the axes, units and pixels every camera of the project uses, Unreal's matrices and intrinsics.

Camera convention (the one place it is written down; docs/architecture.md, section 2)
------------------------------------------------------------------------------------
A camera-to-world matrix ``c2w`` has OpenCV's *camera* axes: x right, y down, z forward (the optical axis). Column
``j < 3`` of a ``c2w`` is camera axis ``j`` expressed in world coordinates and column 3 is the camera centre. The
*world* frame is the one of the source. For SynCamVideo files and for the presets generated here it is Unreal Engine's
world: X forward, Y right, Z up (a left-handed frame), with lengths in "training units" = UE centimetres / 200 (the
released SynCamMaster code divides by 200, so 1 unit = 2 m).

Because that world is left-handed while the OpenCV camera axes are right-handed, the rotation block of such a ``c2w``
has determinant -1. That is expected: validation checks that rotations are orthonormal (R^T R = I, |det R| = 1) and
that all cameras share one handedness, not that det R = +1. The relative embedding fed to the model
(``inv(c2w_0) @ c2w_v``) does not depend on the choice of world frame.

Unreal's own matrices, as written in a SynCamVideo ``camera_extrinsics.json``, are in row-vector form: row 0 is the
camera's forward axis (UE X), row 1 its right axis (UE Y), row 2 its up axis (UE Z), row 3 its location in cm, all in
UE world coordinates. :func:`ue_to_opencv_c2w` and :func:`opencv_to_ue_c2w` convert between the two.

Pixels and intrinsics: pixel (row i, column j) covers [j, j+1) x [i, i+1), so the image centre is (W / 2, H / 2);
:class:`Intrinsics` holds pinhole intrinsics in pixels.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .checks import is_int
from .jsonfile import JSONFileError, read_json

__all__ = [
    "CameraError",
    "Intrinsics",
    "SYNCAMVIDEO_FOCAL_PER_SIDE",
    "UE_UNITS_PER_TRAINING_UNIT",
    "format_ue_matrix",
    "opencv_to_ue_c2w",
    "parse_ue_matrix",
    "read_camera_json",
    "shortest_ue_centimetres",
    "ue_to_opencv_c2w",
]

# Unreal Engine centimetres per training unit: the released SynCamMaster code divides UE translations by 200, so the
# model was trained with 1 unit = 2 m.
UE_UNITS_PER_TRAINING_UNIT = 200.0

# SynCamVideo render camera: 24 mm lens on a 23.76 mm x 23.76 mm sensor, 1280 x 1280 renders.
SYNCAMVIDEO_FOCAL_MM = 24.0
SYNCAMVIDEO_SENSOR_MM = 23.76
# Its focal length over the side of the (square) render: fx = fy = this x max(W, H) pixels for training frames
# (docs/architecture.md, section 2.2). Models record the ratio of their data as ``focal_length_per_side``.
SYNCAMVIDEO_FOCAL_PER_SIDE = SYNCAMVIDEO_FOCAL_MM / SYNCAMVIDEO_SENSOR_MM

_UE_ROW = re.compile(r"\[([^\[\]]*)\]")


class CameraError(ValueError):
    """An invalid camera, rig, intrinsics or camera file. The message is one line: the problem and the fix."""


def read_camera_json(path: str | Path, what: str, fix: str, expect: type | None = dict):
    """The JSON value of a camera file (an object unless ``expect`` says otherwise); a file that cannot be read or
    holds another kind of value raises ``CameraError`` (one line, as ``syncammaster.jsonfile`` words it), the error
    the readers of camera files sort bad ones by."""
    try:
        return read_json(path, fix, what=what, expect=expect)
    except JSONFileError as error:
        raise CameraError(str(error)) from None


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
            if not is_int(value) or value <= 0:
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
        return cls.centered(width, height, SYNCAMVIDEO_FOCAL_PER_SIDE)

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
        data = read_camera_json(path, "intrinsics file", f"expected a JSON object with keys {', '.join(keys)}")
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


def shortest_ue_centimetres(t: np.ndarray) -> np.ndarray:
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
