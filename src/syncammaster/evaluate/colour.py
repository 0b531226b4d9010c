"""Which of the procedural world's object colours a video shows.

Method: a pixel takes part if it is bright and saturated enough (max(r, g, b) >= ``MIN_VALUE`` and
max - min >= ``MIN_SATURATION`` x max, in [0, 1]); it is labelled with the chromatic palette colour
(``syncammaster.render.world.PALETTE`` less white and black) whose chromaticity r / (r + g + b), g / (...), b / (...)
is nearest. Chromaticity does not change when a surface is darkened by shading or shadow, so one colour keeps one
label across an object. A colour is *present* in a video when its label covers at least ``PRESENT_SHARE`` of the
pixels of the frames looked at. White and black are left out: they differ from the grey and dark floors by brightness
alone, which shading changes.

Floors and backdrops carry hues too (terracotta reads as pink, sand as yellow, a clear sky's zenith as blue), so an
object's colour is only scored in views whose background, rendered without the objects, does not show it.

Used by ``benchmarks/fidelity.py``: the colours of a held-out scene's objects should be present in every view where
the renderer shows them on a background without that colour ("colour hit"), and colours that the rendered views
never show should be absent ("false colour").
"""

from __future__ import annotations

import numpy as np

from ..render.world import PALETTE

CHROMATIC_COLOURS = tuple(name for name in PALETTE if name not in ("white", "black"))
MIN_VALUE = 0.2  # darker pixels carry no reliable hue
MIN_SATURATION = 0.25  # greyer pixels (floors, walls, overcast sky) carry no reliable hue
PRESENT_SHARE = 0.005  # a colour covering 0.5 % of the pixels (82 of a 128 x 128 frame) is present
ABSENT_SHARE = 0.001  # in reference and background videos, a colour under 0.1 % of the pixels is absent

_PALETTE_RGB = np.array([PALETTE[name] for name in CHROMATIC_COLOURS], dtype=np.float32)  # (K, 3)
_PALETTE_CHROMA = _PALETTE_RGB / _PALETTE_RGB.sum(axis=1, keepdims=True)  # (K, 3)


def colour_shares(video: np.ndarray) -> dict[str, float]:
    """(T, H, W, 3) uint8 video (or one (H, W, 3) frame) -> share of its pixels labelled with each chromatic
    palette colour (``CHROMATIC_COLOURS``); the shares sum to at most 1 (grey, dark and white pixels get no label)."""
    if video.dtype != np.uint8 or video.ndim not in (3, 4) or video.shape[-1] != 3:
        raise ValueError(f"colour_shares takes uint8 RGB frames (H, W, 3) or (T, H, W, 3), got {video.dtype} "
                         f"{video.shape}")
    if video.size == 0:
        raise ValueError(f"colour_shares got an empty video {video.shape}; give at least one frame of pixels")
    counts, total = np.zeros(len(CHROMATIC_COLOURS), dtype=np.int64), 0
    for frame in video.reshape(-1, *video.shape[-3:]):  # frame by frame: (H, W, 3)
        rgb = frame.reshape(-1, 3).astype(np.float32) / np.float32(255.0)  # (P, 3)
        high, low = rgb.max(axis=1), rgb.min(axis=1)
        rgb = rgb[(high >= MIN_VALUE) & (high - low >= MIN_SATURATION * high)]  # (P', 3)
        chroma = rgb / rgb.sum(axis=1, keepdims=True)  # (P', 3)
        labels = ((chroma[:, None, :] - _PALETTE_CHROMA[None]) ** 2).sum(axis=-1).argmin(axis=1)  # (P',)
        counts += np.bincount(labels, minlength=len(CHROMATIC_COLOURS))
        total += frame.shape[0] * frame.shape[1]
    return {name: float(count) / total for name, count in zip(CHROMATIC_COLOURS, counts, strict=True)}


def colour_presence(
    videos: list[np.ndarray],
    references: list[np.ndarray],
    backgrounds: list[np.ndarray],
    object_colours: set[str] | list[str],
) -> dict[str, list[bool]]:
    """Colours of one scene's views against reference views of the same cameras (the rendered ground truth).

    Args:
        videos: V videos (T, H, W, 3) uint8 to score.
        references: the V reference videos, in the same camera order.
        backgrounds: the V reference views rendered without the objects (any number of frames).
        object_colours: palette names of the scene's objects; white and black are ignored.

    Returns:
        ``hits``: for each chromatic object colour and each view where the reference shows it and the background
        does not, whether the video shows it; ``false``: for each chromatic colour that no reference view shows, and
        each view, whether the video shows it.
    """
    if not len(videos) == len(references) == len(backgrounds):
        raise ValueError(f"{len(videos)} videos against {len(references)} reference videos and {len(backgrounds)} "
                         "backgrounds; give one of each per camera")
    unknown = set(object_colours) - set(PALETTE)
    if unknown:
        raise ValueError(f"unknown colour names {sorted(unknown)}; the palette has {sorted(PALETTE)}")
    scored = [c for c in CHROMATIC_COLOURS if c in set(object_colours)]
    shares = [colour_shares(video) for video in videos]
    reference_shares = [colour_shares(video) for video in references]
    background_shares = [colour_shares(video) for video in backgrounds]
    absent = [c for c in CHROMATIC_COLOURS if all(s[c] < ABSENT_SHARE for s in reference_shares)]
    hits = [s[c] >= PRESENT_SHARE for c in scored
            for s, r, b in zip(shares, reference_shares, background_shares, strict=True)
            if r[c] >= PRESENT_SHARE and b[c] < ABSENT_SHARE]
    false = [s[c] >= PRESENT_SHARE for c in absent for s in shares]
    return {"hits": hits, "false": false}
