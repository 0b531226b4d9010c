"""Tests for syncammaster.video: videos as cameras and phones write them (turned, 60/30/24 fps, variable rate, long,
with audio, 10-bit, odd sizes, non-square pixels), read upright, sampled on their timestamps, decoding only what is
used; and the H.264 writer. Every video is made here with PyAV, small and short."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from syncammaster.video import (
    VideoError,
    VideoTooShortError,
    count_frames,
    fitting_frame_counts,
    probe_video,
    read_clip,
    read_video,
    write_video,
)

from videos import frame_numbers, make_video, marked_picture, numbered_video

# ------------------------------------------------------------------------------------------------ orientation


@pytest.mark.parametrize(("rotation", "turns", "words"), [
    (90, 1, "turned 90 degrees anticlockwise"),
    (180, 2, "turned 180 degrees"),
    (270, 3, "turned 90 degrees clockwise"),
    (-90, 3, "turned 90 degrees clockwise"),  # what a phone writes for a portrait clip
])
def test_a_turned_video_is_read_upright_and_reported_as_displayed(tmp_path, rotation, turns, words):
    picture = marked_picture()  # (24, 40, 3): stored landscape
    path = make_video(tmp_path / "turned.mp4", [picture] * 3, pix_fmt="yuv444p", rotation=rotation)
    # The display matrix turns the stored picture anticlockwise by ``rotation`` degrees (np.rot90's direction).
    expected = np.rot90(picture, k=turns)
    frames = read_video(path)
    assert frames.shape == (3, *expected.shape)
    assert np.abs(frames.astype(int) - expected).max() <= 3  # lossless H.264, RGB <-> YUV rounding only
    info = probe_video(path)
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    assert (info.stored_width, info.stored_height) == (40, 24)
    assert info.describe_size() == f"{expected.shape[1]}x{expected.shape[0]} (stored 40x24, {words})"
    assert count_frames(path) == (3, expected.shape[0], expected.shape[1])


def test_a_mirrored_video_is_read_as_displayed(tmp_path):
    picture = marked_picture()
    path = make_video(tmp_path / "mirrored.mp4", [picture] * 2, pix_fmt="yuv444p", rotation=0, hflip=True)
    assert np.abs(read_video(path)[0].astype(int) - picture[:, ::-1]).max() <= 3
    assert probe_video(path).orientation.describe() == "mirrored left to right"


def test_an_unturned_video_stays_as_stored(tmp_path):
    picture = marked_picture()
    path = make_video(tmp_path / "plain.mp4", [picture] * 2, pix_fmt="yuv444p")
    assert np.abs(read_video(path)[0].astype(int) - picture).max() <= 3
    assert probe_video(path).describe_size() == "40x24"


def test_non_square_pixels_are_scaled_to_square(tmp_path):
    picture = marked_picture(24, 40)
    path = make_video(tmp_path / "anamorphic.mp4", [picture] * 2, sample_aspect_ratio=Fraction(2, 1))
    info = probe_video(path)
    assert (info.width, info.height) == (80, 24)  # shown twice as wide
    frames = read_video(path)
    assert frames.shape == (2, 24, 80, 3)
    assert frames[0, 12, 60, 0] > frames[0, 12, 20, 0]  # the horizontal ramp, stretched


# ------------------------------------------------------------------------------------------------ frame rate


@pytest.mark.parametrize(("source_fps", "expected", "how"), [
    (60, [4 * k for k in range(9)], "every 4th frame of the 60 fps video"),
    (30, [2 * k for k in range(9)], "every 2nd frame of the 30 fps video"),
    # 24 fps: sample k at k/15 s takes frame round(1.6 k), the later one on a tie (none here).
    (24, [0, 2, 3, 5, 6, 8, 10, 11, 13], "the frame nearest each sample time of the 24 fps video"),
    (15, list(range(9)), "every frame of the 15 fps video"),
])
def test_a_clip_is_sampled_at_the_asked_rate(tmp_path, source_fps, expected, how):
    path = numbered_video(tmp_path / f"v{source_fps}.mp4", 2 * source_fps, fps=source_fps)
    clip = read_clip(path, 9, fps=15)
    assert frame_numbers(clip.frames) == expected
    assert clip.fps == 15 and clip.start == 0
    assert clip.end == pytest.approx(8 / 15)
    assert clip.describe().startswith(f"seconds 0.00-0.53 of 2.00, 9 frames at 15 fps ({how})")


def test_without_a_rate_every_frame_is_read_at_the_stream_rate(tmp_path):
    path = numbered_video(tmp_path / "v60.mp4", 30, fps=60)
    clip = read_clip(path)
    assert frame_numbers(clip.frames) == list(range(30))
    assert clip.fps == 60 and not clip.resampled


def test_a_slower_clip_repeats_frames_and_says_so(tmp_path):
    path = numbered_video(tmp_path / "v10.mp4", 20, fps=10)
    clip = read_clip(path, 7, fps=15)
    assert frame_numbers(clip.frames) == [0, 1, 1, 2, 3, 3, 4]  # k/15 s nearest to j/10 s, the later on a tie
    assert "frames repeat: the video has 10 fps" in clip.describe()


def test_a_variable_frame_rate_clip_is_sampled_on_its_timestamps(tmp_path):
    times_ms = [0, 20, 70, 90, 160, 180, 250, 300, 310, 400, 420, 500, 520, 600]  # a phone's uneven frame times
    path = numbered_video(tmp_path / "vfr.mp4", len(times_ms), times_ms=times_ms)
    clip = read_clip(path, 9, fps=15)
    samples = np.arange(9) / 15 * 1000  # (9,) ms
    distance = np.abs(np.array(times_ms)[None] - samples[:, None])  # (9, T)
    # The nearest frame; on a tie the later one (argmin of the reversed row finds the last minimum).
    nearest = len(times_ms) - 1 - np.argmin(distance[:, ::-1], axis=1)
    assert frame_numbers(clip.frames) == nearest.tolist()
    assert clip.fps == 15


def test_start_seconds_and_the_clip_times(tmp_path):
    path = numbered_video(tmp_path / "v30.mp4", 90, fps=30, options={"g": "10"})
    clip = read_clip(path, 5, fps=15, start=1.5)
    assert frame_numbers(clip.frames) == [45, 47, 49, 51, 53]
    assert (clip.start, clip.end) == (1.5, pytest.approx(1.5 + 4 / 15))
    assert clip.describe().startswith("seconds 1.50-1.77 of 3.00, 5 frames at 15 fps")
    native = read_clip(path, 3, start=2.0)
    assert frame_numbers(native.frames) == [60, 61, 62] and native.start == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------------ streaming


def test_a_long_clip_decodes_only_the_frames_it_needs(tmp_path):
    """Only what is used is decoded: from the key frame before the start to one frame past the last one kept,
    the same for a 2 s and a 20 s clip; nothing is decoded up to the end."""
    keyint = 30
    short = numbered_video(tmp_path / "short.mp4", 60, fps=30, options={"g": str(keyint), "sc_threshold": "0"})
    long = numbered_video(tmp_path / "long.mp4", 600, fps=30, options={"g": str(keyint), "sc_threshold": "0"})
    first = [read_clip(path, 9, fps=15) for path in (short, long)]
    assert [frame_numbers(clip.frames) for clip in first] == [list(range(0, 18, 2))] * 2
    assert first[0].frames_decoded == first[1].frames_decoded <= 2 * 8 + 2
    late = read_clip(long, 9, fps=15, start=15.0)
    assert frame_numbers(late.frames) == list(range(450, 468, 2))
    assert late.frames_decoded <= keyint + 2 * 8 + 2  # seeks: at most one group of pictures before the start
    assert count_frames(long).num_frames == 600


# ------------------------------------------------------------------------------------------------ other streams


def test_an_audio_track_is_ignored_and_an_audio_file_is_refused(tmp_path):
    path = numbered_video(tmp_path / "with_audio.mp4", 30, fps=30, audio=True)
    with av.open(str(path)) as container:
        assert [stream.type for stream in container.streams] == ["video", "audio"]
    assert frame_numbers(read_clip(path, 5, fps=15).frames) == [0, 2, 4, 6, 8]

    with av.open(str(tmp_path / "sound.m4a"), "w") as container:
        sound = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*sound.encode(frame), *sound.encode()]:
            container.mux(packet)
    with pytest.raises(VideoError, match=r"sound\.m4a has no video stream \(audio streams only\)"):
        read_video(tmp_path / "sound.m4a")


@pytest.mark.parametrize(("codec", "pix_fmt", "suffix"), [
    ("libx264", "yuv420p10le", "mp4"),
    ("libx265", "yuv420p10le", "mp4"),
    ("prores_ks", "yuv422p10le", "mov"),
])
def test_ten_bit_video_becomes_8_bit_rgb(tmp_path, codec, pix_fmt, suffix):
    picture = marked_picture(64, 96)  # libx265 corrupts its heap on pictures smaller than its 64x64 coding unit
    options = {"x265-params": "log-level=error"} if codec == "libx265" else {}
    path = make_video(tmp_path / f"deep.{suffix}", [picture] * 3, codec=codec, pix_fmt=pix_fmt, options=options)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).format.name == pix_fmt
    frames = read_video(path)
    assert frames.dtype == np.uint8 and frames.shape == (3, 64, 96, 3)
    assert np.abs(frames[0].astype(int) - picture).mean() < 6  # lossy codecs, 4:2:x colour


@pytest.mark.parametrize(("codec", "pix_fmt", "suffix"), [("libx264", "yuv444p", "mp4"), ("gif", "rgb8", "gif")])
def test_odd_sizes(tmp_path, codec, pix_fmt, suffix):
    picture = marked_picture(21, 35)
    path = make_video(tmp_path / f"odd.{suffix}", [picture] * 3, fps=10, codec=codec, pix_fmt=pix_fmt)
    frames = read_video(path)
    assert frames.shape == (3, 21, 35, 3)
    assert np.abs(frames[0].astype(int) - picture).mean() < 25  # GIF: a 256-colour palette
    assert count_frames(path) == (3, 21, 35)


# ------------------------------------------------------------------------------------------------ refusals


def test_too_short_says_what_fits(tmp_path):
    path = numbered_video(tmp_path / "half_second.mp4", 30, fps=60)  # 0.5 s
    with pytest.raises(VideoTooShortError, match="gives 8 frames at 15 fps, fewer than the 17 asked") as error:
        read_clip(path, 17, fps=15)
    assert error.value.available == 8
    # 17 frames from 0 to the last frame (29/60 s) at a rate of 16 / (29/60) = 33.1 fps: no faster than the clip.
    assert error.value.fitting_fps == pytest.approx(33.2)
    assert frame_numbers(read_clip(path, 17, fps=33.2).frames)[-1] <= 29
    with pytest.raises(VideoTooShortError) as error:
        read_clip(path, 31)  # fewer frames than asked at its own rate: no rate fits
    assert error.value.available == 30 and error.value.fitting_fps is None


def test_a_still_image_and_a_start_past_the_end_are_refused(tmp_path):
    path = numbered_video(tmp_path / "one.mp4", 1)
    with pytest.raises(VideoError, match="single frame"):
        read_clip(path, 5, fps=15)
    path = numbered_video(tmp_path / "two_seconds.mp4", 60)
    with pytest.raises(VideoError, match="start 3 s is past the end"):
        read_clip(path, 5, fps=15, start=3)
    for bad in ({"fps": 0}, {"fps": float("nan")}, {"start": -1}, {"num_frames": 0}):
        with pytest.raises(VideoError):
            read_clip(path, **{"num_frames": 5, **bad})


def test_corrupt_missing_or_empty_video(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 10)
    with pytest.raises(VideoError, match="junk.mp4"):
        read_video(tmp_path / "junk.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty.mp4"):
        read_video(tmp_path / "empty.mp4")
    with pytest.raises(VideoError, match="missing.mp4 does not exist"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="is a folder"):
        read_video(tmp_path)
    write_video(tmp_path / "good.mp4", np.stack([marked_picture()] * 5))
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated.mp4"):
        read_video(tmp_path / "truncated.mp4")


def test_fitting_frame_counts():
    assert fitting_frame_counts(17) == [5, 9, 13, 17]
    assert fitting_frame_counts(8) == [5]
    assert fitting_frame_counts(4) == [] and fitting_frame_counts(1) == []


# ------------------------------------------------------------------------------------------------ writing


def test_video_round_trip_at_its_rate(tmp_path):
    video = np.stack([marked_picture()] * 5)
    write_video(tmp_path / "v.mp4", video, fps=24.0)
    clip = read_clip(tmp_path / "v.mp4")
    assert clip.frames.shape == video.shape and clip.frames.dtype == np.uint8
    assert np.abs(clip.frames.astype(float) - video).mean() < 3.0
    assert clip.fps == 24.0


def test_write_video_validates(tmp_path):
    with pytest.raises(VideoError, match="even width and height"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 31, 48, 3), np.uint8))
    with pytest.raises(VideoError, match="uint8"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 32, 48, 3), np.float32))
    with pytest.raises(VideoError, match=r"\(T, H, W, 3\)"):
        write_video(tmp_path / "v.mp4", np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(VideoError, match="fps"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 32, 48, 3), np.uint8), fps=0)


class _WatchedContainer:
    """A real PyAV container that remembers whether its ``with`` block has ended."""

    def __init__(self, container) -> None:
        self.container, self.closed = container, False

    def __getattr__(self, name):
        return getattr(self.container, name)

    def __enter__(self):
        self.container.__enter__()
        return self

    def __exit__(self, *exc):
        self.closed = True
        return self.container.__exit__(*exc)


@pytest.mark.parametrize("read", [count_frames, probe_video, lambda path: read_clip(path, 2)])
def test_a_stream_is_read_only_while_its_file_is_open(tmp_path, monkeypatch, read):
    """A stream's fields read after its container closed are freed memory: the index's threads, checking many videos
    at once, crashed on the sample aspect ratio read that way. Every read of the stream's display size must happen
    while the file is open."""
    import syncammaster.video as video

    opened, sizes_read = [], []
    real_open, real_display_size = av.open, video._display_size

    def watched_open(*args, **kwargs):
        opened.append(_WatchedContainer(real_open(*args, **kwargs)))
        return opened[-1]

    def watched_display_size(stream, width, height):
        sizes_read.append(opened[-1].closed)
        return real_display_size(stream, width, height)

    path = make_video(tmp_path / "anamorphic.mp4", np.zeros((3, 16, 32, 3), np.uint8), sample_aspect_ratio=Fraction(2))
    monkeypatch.setattr(video.av, "open", watched_open)
    monkeypatch.setattr(video, "_display_size", watched_display_size)
    read(path)
    assert sizes_read and not any(sizes_read)
