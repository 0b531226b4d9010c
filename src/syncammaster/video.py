"""Video files in and out (PyAV): the one reader every input video goes through, and the H.264 writer.

Reading takes videos as cameras and phones write them:

- **Orientation.** A phone films a portrait clip as a landscape picture plus a display matrix saying how to turn it
  (``ffprobe``: "rotation of -90.00 degrees"). Frames come out as a player shows them: the matrix's right-angle
  rotation and mirroring are applied (as FFmpeg's own autorotation does), and every size reported is the displayed
  one. A rotation that is not a multiple of 90 degrees is refused.
- **Non-square pixels.** A stream with a sample aspect ratio other than 1:1 is scaled to square pixels.
- **Any pixel format** (10-bit, 4:2:2, 4:4:4, alpha, palette GIFs) becomes 8-bit RGB; audio, subtitle and data
  streams are ignored (the first video stream is read).
- **Streaming.** Only the frames asked for are decoded: :func:`read_clip` seeks to the start, decodes until the
  last frame it needs and converts to RGB only the frames it keeps, so its memory depends on the frames returned,
  never on the clip's length (``benchmarks/video_memory.py``).
- **Frame rate.** ``read_clip(path, fps=F)`` samples the clip at F frames per second on the clip's own timestamps:
  sample k, at ``start + k / F`` seconds, is the frame shown nearest that time (FFmpeg's ``fps`` filter, rounding to
  the nearest). A 60 fps clip read at 15 fps gives every 4th frame; a variable-frame-rate phone clip gives evenly
  timed frames; a clip slower than F repeats frames. Without ``fps`` every frame is returned, at the stream's
  average rate.

Every problem raises :class:`VideoError`, one line naming the file, the problem and the fix.

One file, so that every video read and written anywhere follows these rules; over 500 lines for the orientation,
pixel-format and timestamp cases real files bring.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

__all__ = [
    "DEFAULT_FPS",
    "Clip",
    "FrameCount",
    "VideoError",
    "VideoInfo",
    "VideoTooShortError",
    "count_frames",
    "fitting_frame_counts",
    "probe_video",
    "read_clip",
    "read_video",
    "write_video",
]

DEFAULT_FPS = 15.0  # SynCamVideo's frame rate: the rate SynCamMaster models are trained at
# x264 constant rate factor: 0 is lossless, 18 is usually called visually lossless; 15 keeps the small per-pixel
# error that the consistency metrics would otherwise pick up as noise.
VIDEO_CRF = 15
# Two timestamps closer than this (seconds) are the same instant: absorbs float rounding of pts * time_base, so a
# sample time that falls exactly halfway between two frames always takes the later one.
TIME_TOLERANCE = 1e-6
# FFmpeg's display matrix: 9 int32 in row-major order; the 2x2 linear part is 16.16 fixed point.
DISPLAY_MATRIX_ONE = 1 << 16


class VideoError(ValueError):
    """A video file that cannot be read as asked. The message is one line: the file, the problem and the fix."""


class VideoTooShortError(VideoError):
    """Fewer frames fit in the clip than were asked for.

    Args:
        available: frames the clip gives from the start at the asked rate.
        fitting_fps: the lowest rate at which the asked frames fit in the clip from the start without repeating
            frames (None where none does: the clip has fewer frames than asked at its own rate).
    """

    def __init__(self, message: str, available: int, fitting_fps: float | None):
        super().__init__(message)
        self.available = available
        self.fitting_fps = fitting_fps


# ----------------------------------------------------------------------------------------------------------------
# Orientation
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Orientation:
    """How a stored picture is turned for display: transpose first, then flip rows and/or columns.

    FFmpeg's display matrix maps a stored pixel (x = column, y = row) to a displayed one by
    ``(x', y') = (a x + c y, b x + d y)`` (plus a shift into the picture), with [a, b, c, d] its 2x2 linear part.
    For the right-angle matrices cameras write, that part is a signed permutation: ``b, c != 0`` transposes the
    picture, a negative ``b`` or ``d`` flips its rows, a negative ``a`` or ``c`` its columns.
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_columns: bool = False

    @classmethod
    def from_display_matrix(cls, matrix: np.ndarray, path: Path) -> Orientation:
        """The orientation of a (9,) int32 display matrix; VideoError for a rotation off the right angles."""
        a, b, c, d = (matrix[[0, 1, 3, 4]] / DISPLAY_MATRIX_ONE).tolist()
        if abs(b) < 1e-3 and abs(c) < 1e-3 and abs(a) > 1e-3 and abs(d) > 1e-3:
            return cls(False, d < 0, a < 0)
        if abs(a) < 1e-3 and abs(d) < 1e-3 and abs(b) > 1e-3 and abs(c) > 1e-3:
            return cls(True, b < 0, c < 0)
        degrees = -math.degrees(math.atan2(b, a))
        raise VideoError(
            f"{path} asks to be shown turned by {degrees:.1f} degrees, not a multiple of 90; re-encode it upright "
            "(e.g. ffmpeg -i IN -c:v libx264 OUT.mp4 applies the rotation)"
        )

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_columns)

    def apply(self, picture: np.ndarray) -> np.ndarray:
        """(H, W, 3) stored -> the displayed picture ((W, H, 3) when transposed); a view, no copy."""
        if self.transpose:
            picture = picture.transpose(1, 0, 2)
        if self.flip_rows:
            picture = picture[::-1]
        if self.flip_columns:
            picture = picture[:, ::-1]
        return picture

    def describe(self) -> str:
        """In words, as a player turns the stored picture ("turned 90 degrees clockwise"); "" for none."""
        # Clockwise quarter turn = transpose, then flip columns; anticlockwise = transpose, then flip rows.
        words = {
            (False, False, False): "",
            (False, True, True): "turned 180 degrees",
            (True, False, True): "turned 90 degrees clockwise",
            (True, True, False): "turned 90 degrees anticlockwise",
            (False, False, True): "mirrored left to right",
            (False, True, False): "mirrored top to bottom",
            (True, False, False): "transposed",
            (True, True, True): "transposed across the other diagonal",
        }
        return words[self.transpose, self.flip_rows, self.flip_columns]


def _orientation(frame: av.VideoFrame, path: Path) -> Orientation:
    """The frame's display matrix (FFmpeg copies the stream's to every decoded frame) as an Orientation."""
    side_data = frame.side_data.get("DISPLAYMATRIX")
    if side_data is None:
        return Orientation()
    return Orientation.from_display_matrix(np.frombuffer(bytes(side_data), dtype=np.int32), path)


# ----------------------------------------------------------------------------------------------------------------
# Probing
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """A video file's first video stream, sizes as displayed.

    Args:
        path: the file.
        width, height: pixels as a player shows them (display matrix and pixel aspect ratio applied).
        fps: the stream's average frame rate (frames per second; ``DEFAULT_FPS`` where the file gives none).
        duration: seconds the container announces (None where it announces none).
        num_frames: frames the container announces (None where it announces none).
        stored_width, stored_height: pixels of the coded pictures.
        orientation: how the stored pictures are turned for display.
    """

    path: Path
    width: int
    height: int
    fps: float
    duration: float | None
    num_frames: int | None
    stored_width: int
    stored_height: int
    orientation: Orientation

    def describe_size(self) -> str:
        """"720x1280" or "720x1280 (stored 1280x720, turned 90 degrees clockwise)"."""
        size = f"{self.width}x{self.height}"
        notes = []
        if (self.stored_width, self.stored_height) != (self.width, self.height) or not self.orientation.is_identity:
            notes.append(f"stored {self.stored_width}x{self.stored_height}")
        if not self.orientation.is_identity:
            notes.append(self.orientation.describe())
        return f"{size} ({', '.join(notes)})" if notes else size


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise VideoError(f"{path} is a folder; give a video file")
    if not path.is_file():
        raise VideoError(f"video {path} does not exist; check the path")
    return path


@contextmanager
def _opened(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The open container and its first video stream; FFmpeg and OS errors become one-line VideoErrors."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({stream.type for stream in container.streams}) or ["no"]
                raise VideoError(f"{path} has no video stream ({', '.join(kinds)} streams only); give a video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame and slice threads: constant extra memory, faster decoding
            yield container, stream
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot decode video {path} ({e.strerror or e}); the file is empty or corrupt, or not a "
                         "video") from None
    except OSError as e:
        raise VideoError(f"cannot read video {path}: {e.strerror or e}") from None


def _display_size(stream: av.video.stream.VideoStream, width: int, height: int) -> tuple[int, int]:
    """(width, height) with square pixels, before any turn: the width scaled by the sample aspect ratio."""
    ratio = stream.sample_aspect_ratio
    if ratio and ratio != 1:
        width = max(2, round(width * float(ratio) / 2) * 2)  # even, as video sizes are
    return width, height


def _stream_facts(stream, container) -> tuple[float, float | None, int | None]:
    """(average fps, announced duration in seconds or None, announced frame count or None)."""
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else DEFAULT_FPS  # a file without a rate: assume SynCamVideo's
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = None
    return fps, duration, (stream.frames or None)


def probe_video(path: str | Path) -> VideoInfo:
    """The header of a video file, and its first frame decoded for the display matrix (cheap at any length)."""
    path = _check_path(path)
    with _opened(path) as (container, stream):
        first = next(container.decode(stream), None)
        if first is None:
            raise VideoError(f"video {path} has no frames; the file is empty or corrupt")
        fps, duration, num_frames = _stream_facts(stream, container)
        orientation = _orientation(first, path)
        width, height = _display_size(stream, first.width, first.height)
    if orientation.transpose:
        width, height = height, width
    return VideoInfo(path, width, height, fps, duration, num_frames, first.width, first.height, orientation)


class FrameCount(NamedTuple):
    """What decoding a whole video found: its frames and their size as displayed."""

    num_frames: int
    height: int
    width: int


def count_frames(path: str | Path) -> FrameCount:
    """The frames and size (as displayed) of a video, decoding every frame without converting it.

    A video that cannot be opened, has no video stream, decodes no frame, changes size, or decodes fewer frames than
    its container announces (a truncated file) raises VideoError. Every frame is decoded because an H.264 clip is
    often one group of pictures: its last frame is only reached through all the others.
    """
    path = _check_path(path)
    with _opened(path) as (container, stream):
        num_frames, size, first = 0, None, None
        for frame in container.decode(stream):
            num_frames += 1
            if first is None:
                first, size = frame, (frame.height, frame.width)
            elif size != (frame.height, frame.width):
                raise VideoError(f"{path} changes frame size from {size} to {(frame.height, frame.width)}")
        announced = stream.frames
        if first is None:
            raise VideoError(f"{path} decodes no frames; the file is empty or corrupt")
        width, height = _display_size(stream, first.width, first.height)  # the stream is read while it is open
    if announced and num_frames < announced:
        raise VideoError(f"{path} is truncated: {num_frames} of its {announced} frames decode")
    if _orientation(first, path).transpose:
        width, height = height, width
    return FrameCount(num_frames, height, width)


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """Frames read from a video file.

    Args:
        frames: (T, H, W, 3) uint8 RGB, upright as displayed.
        fps: the rate the frames represent (frames per second): the asked rate, or the stream's own.
        start: seconds from the video's first frame to the clip's first sample.
        info: the video file.
        resampled: whether the frames were sampled on a time grid (``fps`` asked) rather than taken one by one.
        frames_decoded: frames the decoder produced to read the clip, kept or not (from the key frame before the
            start to one frame past the last one kept).
    """

    frames: np.ndarray
    fps: float
    start: float
    info: VideoInfo
    resampled: bool
    frames_decoded: int

    @property
    def end(self) -> float:
        """Seconds from the video's first frame to the clip's last sample."""
        return self.start + (self.frames.shape[0] - 1) / self.fps

    def describe(self) -> str:
        """One line: which seconds at which rate, and the size as displayed."""
        num_frames = self.frames.shape[0]
        source = self.info.fps
        if not self.resampled or math.isclose(self.fps, source, rel_tol=1e-3):
            how = f"every frame of the {source:g} fps video"
        elif source > self.fps and math.isclose(source / self.fps, round(source / self.fps), rel_tol=1e-3):
            how = f"every {_ordinal(round(source / self.fps))} frame of the {source:g} fps video"
        elif source > self.fps:
            how = f"the frame nearest each sample time of the {source:g} fps video"
        else:
            how = f"frames repeat: the video has {source:g} fps"
        length = f" of {self.info.duration:.2f}" if self.info.duration is not None else ""
        return (f"seconds {self.start:.2f}-{self.end:.2f}{length}, {num_frames} frames at {self.fps:g} fps ({how}), "
                f"{self.info.describe_size()}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _check_rate(fps, what: str) -> None:
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise VideoError(f"{what}: fps must be a positive number, got {fps!r}")


def _timed_frames(container, stream, origin: float, fps: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds from ``origin``, frame) of each decoded frame; frames without a timestamp follow the last at 1/fps."""
    last = None
    for frame in container.decode(stream):
        time = frame.time
        if time is None:
            time = origin if last is None else origin + last + 1.0 / fps
        last = time - origin
        yield last, frame


def read_clip(path: str | Path, num_frames: int | None = None, fps: float | None = None,
              start: float = 0.0) -> Clip:
    """Read frames of a video file, upright, decoding only what they need (module docstring).

    Args:
        path: a video file.
        num_frames: frames to return; None: up to the end of the video.
        fps: sample at this rate (frames per second) on the clip's timestamps; None: every frame, at the stream's
            average rate.
        start: seconds from the video's first frame to the first frame returned.

    Returns:
        a Clip; VideoTooShortError when fewer than ``num_frames`` frames fit, VideoError for any other problem.
    """
    # 1. Check the request and the file.
    if num_frames is not None and (isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral)
                                   or num_frames < 1):
        raise VideoError(f"num_frames must be a whole number >= 1, got {num_frames!r}")
    if fps is not None:
        _check_rate(fps, f"reading {path}")
    if isinstance(start, bool) or not isinstance(start, numbers.Real) or not math.isfinite(start) or start < 0:
        raise VideoError(f"the start of the clip must be a number of seconds >= 0, got {start!r}")
    info = probe_video(path)
    if info.duration is not None and start >= info.duration:
        raise VideoError(f"the start {start:g} s is past the end of {info.path} ({info.duration:.2f} s); start earlier")

    # 2. Decode from the key frame before ``start``, converting only the frames kept (into one array when their
    # number is known: no second copy).
    frames: list[np.ndarray] | np.ndarray = []
    if num_frames is not None:
        frames = np.empty((num_frames, info.height, info.width, 3), dtype=np.uint8)  # (T, H, W, 3)
    times: list[float] = []
    with _opened(info.path) as (container, stream):
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        if start > 0:
            try:
                container.seek(round((origin + start) / stream.time_base), stream=stream, backward=True)
            except av.error.FFmpegError:
                container.seek(0)  # a format without seeking: decode from the beginning
        convert = _converter(info)
        decoded = _Decoded(_timed_frames(container, stream, origin, info.fps))
        picked = _every_frame(decoded, start) if fps is None else _sampled(decoded, start, float(fps), info.fps)
        for time, frame in picked:
            if num_frames is None:
                frames.append(convert(frame))
            else:
                frames[len(times)] = convert(frame)
            times.append(time)
            if len(times) == num_frames:
                break

    # 3. Fewer frames than asked: say how many fit, and at which rate the asked number would.
    if not times:
        raise VideoError(f"no frame of {info.path} is at or after {start:g} s; start earlier")
    if num_frames is not None and len(times) < num_frames:
        raise _too_short(info, len(times), num_frames, fps, start, decoded)
    rate = info.fps if fps is None else float(fps)
    frames = frames if isinstance(frames, np.ndarray) else np.stack(frames)
    return Clip(frames, rate, times[0], info, resampled=fps is not None, frames_decoded=decoded.count)


class _Decoded:
    """The (time, frame) pairs of a decoder, counted, remembering the last frame's time."""

    def __init__(self, timed: Iterator[tuple[float, av.VideoFrame]]):
        self.timed, self.count, self.last_time = timed, 0, None

    def __iter__(self) -> Iterator[tuple[float, av.VideoFrame]]:
        for time, frame in self.timed:
            self.count += 1
            self.last_time = time
            yield time, frame


def _converter(info: VideoInfo) -> Callable[[av.VideoFrame], np.ndarray]:
    """A function: decoded frame -> (H, W, 3) uint8 RGB, square pixels, upright; the last result is reused when a
    frame is sampled twice (a clip slower than the asked rate)."""
    width, height = (info.height, info.width) if info.orientation.transpose else (info.width, info.height)
    scale = {"width": width, "height": height} if (width, height) != (info.stored_width, info.stored_height) else {}
    cache: list = [None, None]

    def convert(frame: av.VideoFrame) -> np.ndarray:
        if cache[0] is not frame:
            picture = frame.to_ndarray(format="rgb24", **scale)  # (H, W, 3), stored orientation
            cache[:] = [frame, np.ascontiguousarray(info.orientation.apply(picture))]
        return cache[1]

    return convert


def _every_frame(timed, start: float):
    """(time, frame) of each frame whose timestamp is at or after ``start``."""
    for time, frame in timed:
        if time >= start - TIME_TOLERANCE:
            yield time, frame


def _sampled(timed, start: float, fps: float, source_fps: float):
    """(sample time, frame) for the sample times start + k / fps: the frame whose timestamp is nearest each time
    (the later on a tie); the last frame serves sample times up to half a frame after it."""
    k = 0
    previous = None  # (time, frame)
    for time, frame in timed:
        if previous is None and time > start + TIME_TOLERANCE:
            previous = (time, frame)  # the video starts after ``start``: its first frame serves until then
        if previous is not None:
            boundary = (previous[0] + time) / 2
            while start + k / fps < boundary - TIME_TOLERANCE:
                yield start + k / fps, previous[1]
                k += 1
        previous = (time, frame)
    if previous is not None:
        end = previous[0] + 0.5 / source_fps
        while start + k / fps < end - TIME_TOLERANCE:
            yield start + k / fps, previous[1]
            k += 1


def _too_short(info: VideoInfo, available: int, num_frames: int, fps: float | None, start: float,
               decoded: _Decoded) -> VideoError:
    if start == 0 and decoded.count == 1:
        return VideoError(f"{info.path} holds a single frame (a still image); give a video")
    fitting_fps = None
    span = (decoded.last_time or 0.0) - start  # seconds from the start to the video's last frame
    if fps is not None and span > 0:
        needed = (num_frames - 1) / span  # the rate at which num_frames samples end on the last frame
        if needed <= info.fps * (1 + 1e-3):
            fitting_fps = min(math.ceil(needed * 10) / 10, info.fps)
    rate = info.fps if fps is None else fps
    where = f" from {start:g} s" if start else ""
    return VideoTooShortError(
        f"{info.path} gives {available} frames{where} at {rate:g} fps, fewer than the {num_frames} asked",
        available, fitting_fps,
    )


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video file, upright: (T, H, W, 3) uint8 RGB."""
    return read_clip(path).frames


def fitting_frame_counts(available: int, stride: int = 4, minimum: int = 5) -> list[int]:
    """The frame counts of the form stride k + 1, at least ``minimum``, that fit in ``available`` frames."""
    return list(range(minimum, available + 1, stride)) if available >= minimum else []


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def check_frames(frames: np.ndarray, what: str) -> None:
    """VideoError unless ``frames`` is a (T, H, W, 3) uint8 array with T >= 1."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        dtype = frames.dtype if isinstance(frames, np.ndarray) else type(frames).__name__
        raise VideoError(
            f"{what} must be a uint8 numpy array (T, H, W, 3), got {dtype}; convert with .astype(np.uint8)"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise VideoError(f"{what} must have shape (T, H, W, 3) with T >= 1, got {frames.shape}")


def check_fps(fps: float, what: str) -> None:
    """VideoError unless ``fps`` is a finite positive number."""
    _check_rate(fps, what)


def write_video(path: str | Path, frames: np.ndarray, fps: float = DEFAULT_FPS) -> None:
    """Encode RGB frames (T, H, W, 3) uint8 as H.264 (libx264, yuv420p) at ``fps`` frames per second."""
    check_frames(frames, f"video {path}")
    num_frames, height, width, _ = frames.shape
    if height % 2 or width % 2:
        raise VideoError(f"video {path} is {width}x{height}; H.264 (yuv420p) needs an even width and height")
    check_fps(fps, f"video {path}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(VIDEO_CRF)}
        for frame in frames:  # (H, W, 3)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
