"""The optional learned matcher: a tiny random LightGlue (transformers) from a local folder, and clear failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from syncammaster.cameras import CameraRig
from syncammaster.cli import main
from syncammaster.evaluate import EvaluationSettings, evaluate_scene
from syncammaster.evaluate.matching import LearnedMatcher, MatcherError
from syncammaster.scene import Scene


@pytest.fixture(scope="module")
def tiny_lightglue(tmp_path_factory):
    """A random LightGlue on a random SuperPoint (widths 8-32, 2 layers) with its image processor (64x64 inputs)."""
    from transformers import LightGlueConfig, LightGlueForKeypointMatching, LightGlueImageProcessorPil, SuperPointConfig

    detector = SuperPointConfig(encoder_hidden_sizes=[8, 8, 16, 16], decoder_hidden_size=32, descriptor_decoder_dim=32,
                                max_keypoints=64)
    config = LightGlueConfig(keypoint_detector_config=detector, descriptor_dim=32, hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, filter_threshold=0.0)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("lightglue")
    LightGlueForKeypointMatching(config).eval().save_pretrained(folder)
    LightGlueImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def _scene() -> Scene:
    rng = np.random.default_rng(0)
    c2w = np.repeat(np.eye(4)[None], 3, axis=0)
    c2w[1, 0, 3], c2w[2, 0, 3] = 0.2, 0.4  # cameras stepping right
    videos = [rng.integers(0, 256, size=(5, 48, 64, 3), dtype=np.uint8) for _ in range(3)]
    return Scene(videos, CameraRig(c2w), prompt="noise")


def test_learned_matcher_scores_every_pair(tiny_lightglue):
    matcher = LearnedMatcher(tiny_lightglue)
    frame_a, frame_b = _scene().videos[0][0], _scene().videos[1][0]
    matches = matcher.match(matcher.detect(frame_a), matcher.detect(frame_b))
    assert matches.points_a.shape == matches.points_b.shape and matches.points_a.shape[1] == 2
    assert len(matches.points_a) > 0  # a random model with no score filter still pairs keypoints
    x, y = matches.points_a[:, 0], matches.points_a[:, 1]
    assert (x >= 0).all() and (x <= 64).all() and (y >= 0).all() and (y <= 48).all()

    report = evaluate_scene(_scene(), EvaluationSettings(frames=2), matcher=matcher).report
    assert report["matcher"].startswith("LightGlueForKeypointMatching")
    assert len(report["pairs"]) == 3 and all(p["matches_per_frame"] > 0 for p in report["pairs"])


def test_missing_matcher_weights_fail_clearly(tmp_path, capsys):
    with pytest.raises(MatcherError, match="does not exist"):
        LearnedMatcher(tmp_path / "nowhere")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text(json.dumps({"model_type": "lightglue"}))
    with pytest.raises(MatcherError, match="lacks preprocessor_config.json"):
        LearnedMatcher(tmp_path / "partial")
    scene_dir = _scene().write(tmp_path / "scene", grid=False)
    assert main(["evaluate", str(scene_dir), "--matcher", str(tmp_path / "nowhere"), "--no-plots", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matcher folder" in err
