"""Tests for syncammaster.data.views: camera angles, view groups under thresholds, the sample list."""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import pytest

from syncammaster.cameras import CameraRig
from syncammaster.cli.sample_list import add_arguments as add_sample_list_arguments
from syncammaster.cli.sample_list import run as run_sample_list
from syncammaster.data import (
    DatasetError,
    SceneIndex,
    camera_angles,
    view_combinations,
    view_groups,
    write_sample_list,
)

from tiny_scenes import VALID_PAIRS, make_dataset, rig_from_angles


def test_camera_angles_are_yaw_and_pitch_of_the_optical_axis():
    azimuths, elevations = [0.0, 20.0, -135.0, 90.0], [0.0, -10.0, 35.0, 5.0]
    az, el = camera_angles(rig_from_angles(azimuths, elevations))
    np.testing.assert_allclose(az, azimuths, atol=1e-9)
    np.testing.assert_allclose(el, elevations, atol=1e-9)


def test_released_validation_cameras():
    # SynCamVideo's validation rig: cam01 and cam03 are 30 deg apart in azimuth, cam03 faces the subject level, cam07
    # is 20 deg above it (looking down), cam09/cam10 step back on cam03's axis.
    rig = CameraRig.preset("syncamvideo")
    az, el = camera_angles(rig)
    angles = {name: (a, e) for name, a, e in zip(rig.names, az, el, strict=True)}
    np.testing.assert_allclose(angles["cam03"], (0.0, 0.0), atol=1e-3)
    np.testing.assert_allclose(abs(angles["cam01"][0] - angles["cam03"][0]), 30.0, atol=1e-3)
    np.testing.assert_allclose(angles["cam07"][1], -20.0, atol=1e-3)
    np.testing.assert_allclose(angles["cam09"], angles["cam10"], atol=1e-6)
    groups = view_groups(rig, 2)
    assert ("cam03", "cam07") not in groups  # 20 deg of elevation
    assert ("cam09", "cam10") in groups and ("cam10", "cam09") in groups


def test_azimuth_threshold():
    rig = rig_from_angles([0.0, 20.0, 45.0], [0.0, 0.0, 0.0])
    # (0, 20) and (20, 45) are within 30 deg, (0, 45) is not; every ordering of a valid pair is a group.
    assert view_groups(rig, 2) == [("cam01", "cam02"), ("cam02", "cam01"), ("cam02", "cam03"), ("cam03", "cam02")]
    assert len(view_groups(rig, 2, max_az=50.0)) == 6
    assert view_groups(rig, 2, max_az=20.0) == []  # exclusive: a 20 deg difference is not < 20
    assert view_groups(rig, 3) == [] and len(view_groups(rig, 3, max_az=50.0)) == 6


def test_elevation_threshold():
    rig = rig_from_angles([0.0, 0.0, 0.0], [0.0, 10.0, 20.0])
    assert view_combinations(rig, 2) == [(0, 1), (1, 2)]  # (0, 20) is 20 deg apart: not < 15
    assert view_combinations(rig, 2, max_el=25.0) == [(0, 1), (0, 2), (1, 2)]


def test_azimuth_difference_wraps_around():
    rig = rig_from_angles([170.0, -170.0, 0.0], [0.0, 0.0, 0.0])
    assert view_combinations(rig, 2) == [(0, 1)]  # 20 deg apart across +-180


def test_groups_match_brute_force_for_several_view_counts():
    azimuths, elevations = [0.0, 10.0, 25.0, 35.0, 50.0, 12.0], [0.0, 5.0, 0.0, 12.0, 0.0, 16.0]
    rig = rig_from_angles(azimuths, elevations)

    def valid(i, j):
        return abs(azimuths[i] - azimuths[j]) < 30 and abs(elevations[i] - elevations[j]) < 15

    for num_views in (1, 2, 3, 4):
        expected = [
            tuple(rig.names[i] for i in ordering)
            for ordering in itertools.permutations(range(rig.num_views), num_views)
            if all(valid(i, j) for i, j in itertools.combinations(ordering, 2))
        ]
        assert view_groups(rig, num_views) == expected
    assert view_groups(rig, 1) == [(name,) for name in rig.names]


def test_invalid_arguments():
    rig = rig_from_angles([0.0, 10.0], [0.0, 0.0])
    with pytest.raises(DatasetError, match="positive integer"):
        view_groups(rig, 0)
    with pytest.raises(DatasetError, match="max_az"):
        view_groups(rig, 2, max_az=-1.0)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return SceneIndex.build(make_dataset(tmp_path_factory.mktemp("dataset")), progress=False)


def test_write_sample_list(index, tmp_path):
    written = write_sample_list(index, tmp_path / "pairs.json", num_views=2)
    assert json.loads((tmp_path / "pairs.json").read_text()) == written
    for scene in index:
        expected = sorted([*VALID_PAIRS[scene.name], *[(b, a) for a, b in VALID_PAIRS[scene.name]]])
        assert sorted(tuple(group) for group in written[scene.name]) == expected
    triples = write_sample_list(index, tmp_path / "triples.json", num_views=3)
    assert triples["procedural/scene0001"] == [] and len(triples["procedural/scene0002"]) == 6


def test_sample_list_command(index, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_sample_list_arguments(parser)
    out = tmp_path / "list.json"
    args = parser.parse_args([str(index.root), "--out", str(out), "--views", "2", "--max-azimuth", "30"])
    run_sample_list(args)
    assert json.loads(out.read_text()) == write_sample_list(index, tmp_path / "again.json", 2)
    assert "wrote 16 groups of 2 views from 3 scenes" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="already exists"):
        run_sample_list(args)
