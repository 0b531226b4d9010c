"""Tests for syncammaster.evaluate.colour: palette colours found in frames, on synthetic frames and on renders."""

from __future__ import annotations

import numpy as np
import pytest

from syncammaster.evaluate import colour_presence, colour_shares
from syncammaster.evaluate.colour import CHROMATIC_COLOURS, PRESENT_SHARE
from syncammaster.render import render_views, sample_cameras, sample_scene
from syncammaster.render.world import PALETTE

SIZE = 64


def grey_frames(frames: int = 3, seed: int = 0) -> np.ndarray:
    """Textured grey floor: (T, SIZE, SIZE, 3) uint8, no hue anywhere."""
    grey = np.random.default_rng(seed).integers(60, 200, size=(frames, SIZE, SIZE, 1))
    return np.repeat(grey, 3, axis=-1).astype(np.uint8)


def with_disc(video: np.ndarray, colour: str, brightness: float, radius: int = 8) -> np.ndarray:
    """The video with a disc of a palette colour, darkened to ``brightness`` as by shading, in every frame."""
    rows, cols = np.mgrid[:SIZE, :SIZE]
    inside = (rows - SIZE // 2) ** 2 + (cols - SIZE // 2) ** 2 <= radius**2  # (H, W)
    out = video.copy()
    out[:, inside] = np.round(np.array(PALETTE[colour]) * brightness * 255).astype(np.uint8)
    return out


@pytest.mark.parametrize("colour", CHROMATIC_COLOURS)
@pytest.mark.parametrize("brightness", [1.0, 0.4])
def test_a_shaded_disc_gets_its_own_colour_and_no_other(colour, brightness):
    shares = colour_shares(with_disc(grey_frames(), colour, brightness))
    disc_share = np.pi * 8**2 / SIZE**2
    assert shares[colour] == pytest.approx(disc_share, rel=0.1)
    assert all(share == 0.0 for name, share in shares.items() if name != colour)


def test_grey_white_and_black_pixels_get_no_label():
    video = with_disc(with_disc(grey_frames(), "white", 1.0, radius=20), "black", 1.0, radius=6)
    assert sum(colour_shares(video).values()) == 0.0


def test_presence_counts_hits_where_the_reference_shows_the_colour_and_false_colours_elsewhere():
    floors = [grey_frames(seed=v) for v in range(3)]
    reference = [with_disc(floors[0], "red", 0.8), floors[1], with_disc(floors[2], "red", 0.8)]
    backgrounds = [floors[0], floors[1], with_disc(floors[2], "red", 0.5, radius=20)]  # view 2: a red backdrop
    # The red object is out of view 1, and red is the backdrop's colour in view 2: red is scored in view 0 only.
    videos = [with_disc(grey_frames(seed=3), "blue", 0.8), with_disc(grey_frames(seed=4), "red", 0.8), floors[2]]
    result = colour_presence(videos, reference, backgrounds, {"red", "white"})
    assert result["hits"] == [False]  # view 0 misses red; white is never scored
    absent = [c for c in CHROMATIC_COLOURS if c != "red"]
    assert len(result["false"]) == 3 * len(absent)
    assert sum(result["false"]) == 1  # blue in view 0
    expected = {"hits": [True], "false": [False] * 3 * len(absent)}
    assert colour_presence(reference, reference, backgrounds, {"red"}) == expected


def test_rendered_objects_are_found_in_their_own_views():
    spec = sample_scene(5)
    videos, _ = render_views(spec, sample_cameras(5, 3, size=SIZE), 3, SIZE)
    colours = {obj.colour for obj in spec.objects} & set(CHROMATIC_COLOURS)
    assert colours, "scene 5 should hold a chromatic object"
    for colour in colours:
        assert max(colour_shares(video)[colour] for video in videos) >= PRESENT_SHARE


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: colour_shares(np.zeros((4, 4, 3), dtype=np.float32)), "uint8 RGB"),
        (lambda: colour_shares(np.zeros((2, 4, 4), dtype=np.uint8)), "uint8 RGB"),
        (lambda: colour_shares(np.zeros((0, 4, 4, 3), dtype=np.uint8)), "empty video"),
        (lambda: colour_presence([grey_frames()], [], [grey_frames()], {"red"}), "one of each per camera"),
        (lambda: colour_presence([grey_frames()], [grey_frames()], [], {"red"}), "one of each per camera"),
        (lambda: colour_presence([grey_frames()], [grey_frames()], [grey_frames()], {"crimson"}), "unknown colour"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
