"""Tests for the CLIP metrics: a tiny random CLIP saved to a local folder, and clear failures without weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from syncammaster.cameras import CameraRig
from syncammaster.cli import main
from syncammaster.evaluate.clip import ClipError, ClipScorer
from syncammaster.scene import Scene
from syncammaster.text import build_caption_tokenizer

CAPTIONS = ["a red sphere bounces on a grey floor", "a blue cube slides to the left"]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random CLIP (2 layers, width 32, 32 px images) with its tokenizer and image processor in one folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = build_caption_tokenizer(CAPTIONS, model_max_length=16)
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={**layers, "vocab_size": len(tokenizer), "max_position_embeddings": 16,
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={**layers, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip")
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _videos(num_views: int = 3, num_frames: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(num_frames, 48, 64, 3), dtype=np.uint8) for _ in range(num_views)]


def test_clip_scores_run_with_a_tiny_random_clip(tiny_clip):
    scorer = ClipScorer(tiny_clip)
    videos = _videos()
    scores = scorer.scores(videos, CAPTIONS[0], sampled_frames=[0, 2, 4])
    assert set(scores) == {"clip_t", "clip_f", "clip_v"}
    for value in scores.values():
        assert value is not None and 0.0 <= value <= 100.0

    # Identical frames are perfectly consistent over time and across views.
    still = [np.repeat(videos[0][:1], 5, axis=0)] * 2
    same = scorer.scores(still, None, sampled_frames=[0, 4])
    assert same["clip_t"] is None
    assert same["clip_f"] == pytest.approx(100.0, abs=1e-3) and same["clip_v"] == pytest.approx(100.0, abs=1e-3)

    # CLIP-T is the cosine of the text and frame embeddings, x 100.
    text = scorer.text_embedding(CAPTIONS[0])
    frames = scorer.image_embeddings(videos[0][[0, 2, 4]])
    one_view = scorer.scores(videos[:1], CAPTIONS[0], sampled_frames=[0, 2, 4])["clip_t"]
    assert one_view == pytest.approx(100 * (frames @ text).clamp(min=0).mean().item(), rel=1e-5)


def test_missing_clip_weights_fail_clearly(tiny_clip, tmp_path):
    with pytest.raises(ClipError, match="does not exist"):
        ClipScorer(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((tiny_clip / "config.json").read_text())
    with pytest.raises(ClipError, match="lacks preprocessor_config.json, model.safetensors"):
        ClipScorer(partial)


def test_evaluate_command_adds_clip_scores_and_fails_in_one_line_without_weights(tiny_clip, tmp_path, capsys):
    c2w = np.repeat(np.eye(4)[None], 2, axis=0)
    c2w[1, 0, 3] = 0.3  # the second camera 0.3 units to the right
    scene = Scene(_videos(2), CameraRig(c2w), prompt=CAPTIONS[1])
    scene_dir = scene.write(tmp_path / "scene", grid=False)
    json_path = tmp_path / "eval.json"
    assert main(["evaluate", str(scene_dir), "--clip", str(tiny_clip), "--json", str(json_path), "--no-plots",
                 "--quiet"]) == 0
    assert "CLIP-T" in capsys.readouterr().out
    clip = json.loads(json_path.read_text())["scenes"][0]["clip"]
    assert all(0.0 <= clip[k] <= 100.0 for k in ("clip_t", "clip_f", "clip_v"))

    assert main(["evaluate", str(scene_dir), "--clip", str(tmp_path / "no_clip"), "--no-plots", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CLIP folder" in err and "does not exist" in err
