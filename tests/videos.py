"""Videos made with PyAV for the tests, as cameras and phones write them: numbered frames (to check which frames a
reader picks), pictures without symmetry (to check orientation), display matrices, variable frame rates, audio."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

BITS, BLOCK, HEIGHT = 10, 8, 16  # frame index drawn as 10 black/white blocks of 8x16 pixels: 80x16 frames


def numbered_frame(index: int) -> np.ndarray:
    """(16, 80, 3) uint8: bit b of ``index`` is block b, white or black (survives lossy coding)."""
    bits = (index >> np.arange(BITS)) & 1  # (BITS,)
    row = np.repeat(bits * 255, BLOCK).astype(np.uint8)  # (80,)
    return np.broadcast_to(row[None, :, None], (HEIGHT, BITS * BLOCK, 3)).copy()


def frame_numbers(frames: np.ndarray) -> list[int]:
    """The indices drawn by :func:`numbered_frame` into (T, 16, 80, 3) frames."""
    blocks = frames.reshape(frames.shape[0], HEIGHT, BITS, BLOCK, 3).mean(axis=(1, 3, 4)) > 127  # (T, BITS)
    return (blocks * (1 << np.arange(BITS))).sum(axis=1).tolist()


def make_video(path, pictures, fps=30, codec="libx264", pix_fmt="yuv420p", times_ms=None, rotation=None,
               hflip=False, options=None, audio=False, sample_aspect_ratio=None):
    """Encode (H, W, 3) uint8 pictures with PyAV: at ``fps``, or at the given presentation times (ms, variable
    rate); with a display matrix (``rotation`` degrees anticlockwise, then ``hflip``), an AAC track, a sample aspect
    ratio."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = pictures[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.options = {"crf": "0", **(options or {})} if codec == "libx264" else dict(options or {})
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip)
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        sound = container.add_stream("aac", rate=8000) if audio else None
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
            if sound is not None:  # 1/fps s of a 440 Hz tone per video frame
                samples = int(8000 / fps)
                t = (np.arange(samples) + i * samples) / 8000
                tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]  # (1, samples)
                audio_frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                audio_frame.sample_rate, audio_frame.pts = 8000, i * samples
                for packet in sound.encode(audio_frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            for packet in sound.encode():
                container.mux(packet)
    return path


def numbered_video(path, num_frames, fps=30, **kwargs):
    return make_video(path, [numbered_frame(i) for i in range(num_frames)], fps=fps, **kwargs)


def marked_picture(height=24, width=40) -> np.ndarray:
    """(H, W, 3) with no symmetry: a horizontal and a vertical ramp, and a white top-left corner."""
    rows, columns = np.mgrid[0:height, 0:width]
    picture = np.stack([columns * 255 // (width - 1), rows * 255 // (height - 1), np.zeros_like(rows)], -1)
    picture[:4, :4] = 255
    return picture.astype(np.uint8)


# x264 does not always encode the same frames to the same bytes within one process (seen at 16x32: frames equal
# before encoding, a mean difference of 0.26 8-bit levels after), so two runs' written videos are compared by their
# mean difference: under one level is the same video (another seed's differs by about 9).
SAME_VIDEO_LEVELS = 1.0


def mean_level_difference(first, second) -> float:
    """Mean absolute difference, in 8-bit levels, of two equally shaped sets of uint8 frames."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).mean())


def folder_contents(folder) -> dict:
    """Every file below ``folder`` by relative path: the decoded frames of an .mp4, the bytes of anything else."""
    from pathlib import Path

    from syncammaster.video import read_video

    root = Path(folder)
    return {path.relative_to(root): read_video(path) if path.suffix == ".mp4" else path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def assert_same_video(first, second, what="") -> None:
    """Two sets of written frames are the same video, up to H.264: a mean difference under ``SAME_VIDEO_LEVELS``."""
    difference = mean_level_difference(first, second)
    assert difference < SAME_VIDEO_LEVELS, f"{what} differ by {difference:.2f} levels on average"


def assert_same_contents(first: dict, second: dict) -> None:
    """Two ``folder_contents``: the same files, equal bytes, and videos the same within ``SAME_VIDEO_LEVELS``."""
    assert sorted(first) == sorted(second)
    for path, value in first.items():
        if isinstance(value, bytes):
            assert second[path] == value, path
        else:
            assert_same_video(value, second[path], str(path))
