"""Tests for syncammaster.data.index: scanning a SynCamVideo-layout root, skipping and counting bad items."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from syncammaster.data import DatasetError, DataWarning, SceneIndex
from syncammaster.scene import write_video

from tiny import CAPTIONS
from tiny_scenes import (
    CAMERAS,
    NUM_FRAMES,
    SCENE_ANGLES,
    SIZE,
    make_dataset,
    read_metadata,
    rig_from_angles,
    smooth_video,
    write_metadata,
)

SCENES = list(SCENE_ANGLES)


@pytest.fixture
def root(tmp_path):
    return make_dataset(tmp_path / "dataset")


def _video(root, scene, camera):
    return root / "train" / scene / "videos" / f"{camera}.mp4"


def _build(root, **kwargs):
    return SceneIndex.build(root, progress=False, **kwargs)


def test_index_counts_scenes_videos_rigs_and_captions(root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean dataset gives no warning
        index = _build(root)
    assert len(index) == 3 and index.num_videos == 12 and not index.problems
    assert [scene.name for scene in index] == SCENES
    assert index.summary() == "skipped 0 of 3 scenes and 0 of 12 videos"
    for s, scene in enumerate(index):
        assert scene.caption == CAPTIONS[s]
        assert scene.cameras == tuple(CAMERAS)
        assert (scene.num_frames, scene.height, scene.width) == (NUM_FRAMES, SIZE, SIZE)
        assert scene.intrinsics is not None and scene.intrinsics.width == SIZE
        expected = rig_from_angles(*SCENE_ANGLES[scene.name], CAMERAS)
        np.testing.assert_allclose(scene.rig.c2w, expected.c2w, atol=1e-9)
        assert scene.rig.names == CAMERAS
    assert index.video_path(SCENES[0], "cam02") == _video(root, SCENES[0], "cam02")


def test_corrupt_and_missing_videos_are_skipped_and_counted(root):
    corrupt = _video(root, SCENES[1], "cam03")
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, corrupt.stat().st_size, dtype=np.uint8).tobytes())
    _video(root, SCENES[2], "cam01").unlink()

    with pytest.warns(DataWarning) as record:
        index = _build(root)
    assert len(record) == 1  # one summary line
    message = str(record[0].message)
    assert "skipped 0 of 3 scenes and 2 of 12 videos" in message
    assert "1 corrupt video (procedural/scene0002/videos/cam03.mp4)" in message
    assert "1 missing video (procedural/scene0003/videos/cam01.mp4)" in message
    assert len(index) == 3 and index.num_videos == 10
    assert index[SCENES[1]].cameras == ("cam01", "cam02", "cam04")
    assert index[SCENES[1]].rig.names == ["cam01", "cam02", "cam04"]
    assert index[SCENES[2]].cameras == ("cam02", "cam03", "cam04")
    assert sorted(problem.kind for problem in index.problems) == ["corrupt video", "missing video"]

    with pytest.raises(DatasetError, match=r"missing video procedural/scene0003/videos/cam01\.mp4.*strict=False"):
        _build(root, strict=True)
    _video(root, SCENES[2], "cam01").write_bytes(_video(root, SCENES[2], "cam02").read_bytes())
    with pytest.raises(DatasetError, match=r"corrupt video procedural/scene0002/videos/cam03\.mp4"):
        _build(root, strict=True)


def test_truncated_and_mismatched_videos_are_skipped(root):
    truncated = _video(root, SCENES[0], "cam02")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    short = _video(root, SCENES[0], "cam04")
    short.unlink()
    write_video(short, smooth_video(99, num_frames=5))  # 5 frames where the scene has 9

    with pytest.warns(DataWarning, match="2 of 12 videos") as record:
        index = _build(root)
    message = str(record[0].message)
    assert "1 corrupt video (procedural/scene0001/videos/cam02.mp4)" in message
    assert "1 video of another length or size (procedural/scene0001/videos/cam04.mp4)" in message
    assert index[SCENES[0]].cameras == ("cam01", "cam03")
    assert index[SCENES[0]].num_frames == NUM_FRAMES


def test_camera_file_problems_skip_the_scene_or_the_view(root):
    (root / "train" / SCENES[0] / "cameras" / "camera_extrinsics.json").unlink()
    (root / "train" / SCENES[1] / "cameras" / "camera_extrinsics.json").write_text("{ not json")
    # A fifth camera with a video and a metadata row, but absent from the scene's camera file.
    extra = _video(root, SCENES[2], "cam05")
    extra.write_bytes(_video(root, SCENES[2], "cam01").read_bytes())
    write_metadata(root, [*read_metadata(root), (f"{SCENES[2]}/videos/cam05.mp4", CAPTIONS[2])])

    with pytest.warns(DataWarning) as record:
        index = _build(root)
    message = str(record[0].message)
    assert "skipped 2 of 3 scenes and 9 of 13 videos" in message
    assert "1 missing camera file (procedural/scene0001)" in message
    assert "1 invalid camera file (procedural/scene0002)" in message
    assert "1 camera missing from its camera file (procedural/scene0003/videos/cam05.mp4)" in message
    assert [scene.name for scene in index] == [SCENES[2]]
    assert index[SCENES[2]].cameras == tuple(CAMERAS)
    with pytest.raises(DatasetError, match="missing camera file procedural/scene0001"):
        _build(root, strict=True)


def test_metadata_rows_and_captions(root):
    rows = read_metadata(root)
    rows[1] = (rows[1][0], "a different caption")  # scene0001/cam02 disagrees with cam01: the first is kept
    rows.append(("../outside/videos/cam01.mp4", "escapes the root"))
    rows.append((rows[0][0], rows[0][1]))  # the same video twice is one video
    write_metadata(root, rows)
    with pytest.warns(DataWarning) as record:
        index = _build(root)
    message = str(record[0].message)
    assert "skipped 0 of 3 scenes and 0 of 12 videos" in message
    assert "1 bad metadata row (row 14 of metadata.csv)" in message
    assert "1 scene with differing captions (first kept) (procedural/scene0001)" in message
    assert index[SCENES[0]].caption == CAPTIONS[0]
    with pytest.raises(DatasetError, match="bad metadata row"):
        _build(root, strict=True)

    (root / "metadata.csv").write_text("path,caption\nx,y\n")
    with pytest.raises(DatasetError, match="needs file_name and text"):
        _build(root)
    (root / "metadata.csv").unlink()
    with pytest.raises(DatasetError, match="no metadata.csv"):
        _build(root)


def test_without_video_check_only_existence_is_checked(root):
    corrupt = _video(root, SCENES[1], "cam03")
    corrupt.write_bytes(b"not a video")
    _video(root, SCENES[2], "cam01").unlink()
    with pytest.warns(DataWarning, match="1 of 12 videos: 1 missing video"):
        index = _build(root, check_videos=False)
    assert index.num_videos == 11 and index[SCENES[0]].num_frames is None


def test_index_json_round_trip(root, tmp_path):
    _video(root, SCENES[2], "cam01").unlink()
    with pytest.warns(DataWarning):
        index = _build(root)
    path = index.save(tmp_path / "index.json")
    again = SceneIndex.load(path)
    assert again.root == index.root and again.summary() == index.summary()
    assert [scene.name for scene in again] == [scene.name for scene in index]
    for scene, loaded in zip(index, again, strict=True):
        assert loaded == scene  # every field but the rig
        np.testing.assert_array_equal(loaded.rig.c2w, scene.rig.c2w)  # exactly: floats round-trip through JSON
        assert loaded.rig.names == scene.rig.names
    assert json.loads(path.read_text())["format"] == "syncammaster-scene-index"
    path.write_text("[]")
    with pytest.raises(DatasetError, match="not a version-1 scene index"):
        SceneIndex.load(path)
