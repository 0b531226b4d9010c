"""syncammaster.data.latent_cache: frames, encoders, the cache layout, resuming, refusing, the Lightning path."""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from syncammaster.cli.cache import add_arguments as add_cache_arguments
from syncammaster.cli.cache import run as run_cache
from syncammaster.data import (
    DatasetError,
    SceneIndex,
    cache_dataset,
    latents_file,
    pad_prompt_embeds,
    read_cache_config,
    resize_and_crop,
    text_file,
)
from syncammaster.scene import read_video

from tiny import CAPTIONS, tiny_pipeline
from tiny_scenes import CAMERAS, NUM_FRAMES, SCENE_ANGLES, SIZE, make_dataset

SCENES = list(SCENE_ANGLES)
MAX_LEN = 24  # caption tokens (the tiny captions have fewer than 12)
LATENT_SHAPE = (16, (NUM_FRAMES - 1) // 4 + 1, SIZE // 8, SIZE // 8)  # (C, F_latent, h, w)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return SceneIndex.build(make_dataset(tmp_path_factory.mktemp("dataset")), progress=False)


def _cache(index, pipe, cache_dir, **kwargs):
    settings = dict(num_frames=NUM_FRAMES, height=SIZE, width=SIZE, max_sequence_length=MAX_LEN, progress=False)
    settings.update(kwargs)
    return cache_dataset(index, pipe.vae, pipe.tokenizer, pipe.text_encoder, cache_dir, **settings)


def _cache_files(cache_dir):
    return sorted(p for p in cache_dir.rglob("*.safetensors"))


class _CallCounter:
    """Counts calls of a bound method and forwards them."""

    def __init__(self, method):
        self.method, self.calls = method, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.method(*args, **kwargs)


@pytest.fixture
def counters(pipe, monkeypatch):
    vae_encode, text_forward = _CallCounter(pipe.vae.encode), _CallCounter(pipe.text_encoder.forward)
    monkeypatch.setattr(pipe.vae, "encode", vae_encode)
    monkeypatch.setattr(pipe.text_encoder, "forward", text_forward)
    return vae_encode, text_forward


# ---------------------------------------------------------------------------------------------------- frames


def test_resize_and_crop_follows_the_release_rule():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)  # (T, h, w, 3)
    # Same height: no scaling, the width is centre-cropped 48 -> 32 (8 columns off each side).
    out = resize_and_crop(frames, 32, 32)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32
    expected = torch.from_numpy(frames[:, :, 8:40]).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(out, expected)
    # 64x64 -> 32x48: scaled by 0.75 to 48x48 (the width fits), then 8 rows off the top and bottom.
    square = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    square[:, :, :, 0] = 255  # red everywhere
    square[:, :8] = 0  # a black band at the top, 6 rows once scaled: cropped away
    out = resize_and_crop(square, 32, 48)
    assert out.shape == (2, 3, 32, 48)
    torch.testing.assert_close(out[:, 0], torch.ones(2, 32, 48))
    torch.testing.assert_close(out[:, 1:], -torch.ones(2, 2, 32, 48))
    assert out.min() >= -1 and out.max() <= 1


def test_resize_matches_the_releases_pil_resize():
    # The release scales PIL images (bilinear, rounded size), then centre-crops: 40x60 -> 32x48 -> 32x32.
    frames = np.random.default_rng(1).integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    scaled = np.stack([np.asarray(Image.fromarray(frame).resize((48, 32), Image.BILINEAR)) for frame in frames])
    expected = torch.from_numpy(scaled[:, :, 8:40]).permute(0, 3, 1, 2).float() / 127.5 - 1
    # Same rounding rule for sizes and offsets; pixel values within one grey level (uint8 rounding of the filter).
    torch.testing.assert_close(resize_and_crop(frames, 32, 32), expected, atol=1 / 127.5 + 1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------- caching


def test_cache_layout_shapes_and_config(index, pipe, tmp_path):
    cache_dir = tmp_path / "cache"
    report = _cache(index, pipe, cache_dir)
    assert (report.num_items, report.num_written, report.num_skipped) == (15, 15, 0)
    files = _cache_files(cache_dir)
    assert len(files) == 15
    for scene in SCENES:
        for camera in CAMERAS:
            latents = load_file(latents_file(cache_dir, scene, camera))["latents"]
            assert latents.shape == LATENT_SHAPE and latents.dtype == torch.float32
        embeds = load_file(text_file(cache_dir, scene))["prompt_embeds"]
        assert embeds.ndim == 2 and embeds.shape[1] == 16 and 1 < embeds.shape[0] < MAX_LEN
    config = read_cache_config(cache_dir)
    assert (config["num_frames"], config["height"], config["width"]) == (NUM_FRAMES, SIZE, SIZE)
    assert config["max_sequence_length"] == MAX_LEN and config["temporal_stride"] == 4
    assert config["vae"]["class"] == "AutoencoderKLWan" and len(config["vae"]["fingerprint"]) == 16
    assert SceneIndex.load(cache_dir / "scene_index.json").summary() == index.summary()
    assert not list(cache_dir.rglob("*.tmp"))


def test_cached_latents_are_the_normalised_posterior_mean(index, pipe, tmp_path):
    cache_dir = tmp_path / "cache"
    _cache(index, pipe, cache_dir, batch_size=3)
    scene, camera = SCENES[1], "cam03"
    frames = read_video(index.video_path(scene, camera))[:NUM_FRAMES]  # (T, H, W, 3), already 32x32
    video = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1  # (3, T, H, W) in [-1, 1]
    with torch.no_grad():
        mu = pipe.vae.encode(video[None]).latent_dist.mean[0]  # (C, F, h, w)
    mean = torch.tensor(pipe.vae.config.latents_mean).view(-1, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(-1, 1, 1, 1)
    cached = load_file(latents_file(cache_dir, scene, camera))["latents"]
    torch.testing.assert_close(cached, (mu - mean) / std, atol=1e-5, rtol=1e-5)
    # ... so the pipeline's decode path (z * std + mean) gets the VAE's own latent back.
    assert torch.isfinite(pipe.decode_latents(cached[None])).all()


def test_cached_prompt_embeds_pad_to_the_pipelines_encoding(index, pipe, tmp_path):
    cache_dir = tmp_path / "cache"
    _cache(index, pipe, cache_dir)
    for s, scene in enumerate(SCENES):
        cached = load_file(text_file(cache_dir, scene))["prompt_embeds"]  # (L_valid, D)
        with torch.no_grad():
            expected, _ = pipe.encode_prompt(
                CAPTIONS[s], do_classifier_free_guidance=False, max_sequence_length=MAX_LEN, device="cpu"
            )  # (1, MAX_LEN, D), zeros after the valid tokens
        torch.testing.assert_close(pad_prompt_embeds(cached, MAX_LEN), expected[0], atol=1e-6, rtol=1e-5)
        with safe_open(str(text_file(cache_dir, scene)), framework="pt") as f:
            assert f.metadata()["caption"] == CAPTIONS[s]


def test_second_run_skips_everything(index, pipe, tmp_path, counters):
    cache_dir = tmp_path / "cache"
    _cache(index, pipe, cache_dir, batch_size=2)
    vae_encode, text_forward = counters
    assert vae_encode.calls == 7 and text_forward.calls == 2  # [3 captions, 12 videos] in batches of 2
    mtimes = {path: path.stat().st_mtime_ns for path in _cache_files(cache_dir)}
    vae_encode.calls = text_forward.calls = 0

    report = _cache(index, pipe, cache_dir, batch_size=2)
    assert (report.num_written, report.num_skipped) == (0, 15)
    assert vae_encode.calls == 0 and text_forward.calls == 0
    assert {path: path.stat().st_mtime_ns for path in _cache_files(cache_dir)} == mtimes


def test_interrupted_run_redoes_only_the_missing_item(index, pipe, tmp_path, counters):
    cache_dir = tmp_path / "cache"
    _cache(index, pipe, cache_dir)
    lost = latents_file(cache_dir, SCENES[2], "cam02")
    before = load_file(lost)["latents"]
    lost.unlink()
    mtimes = {path: path.stat().st_mtime_ns for path in _cache_files(cache_dir)}
    vae_encode, text_forward = counters
    vae_encode.calls = text_forward.calls = 0

    report = _cache(index, pipe, cache_dir)
    assert (report.num_written, report.num_skipped) == (1, 14)
    assert vae_encode.calls == 1 and text_forward.calls == 0
    torch.testing.assert_close(load_file(lost)["latents"], before)
    assert {path: path.stat().st_mtime_ns for path in _cache_files(cache_dir) if path != lost} == mtimes


def test_changed_caption_is_encoded_again(index, pipe, tmp_path, counters):
    cache_dir = tmp_path / "cache"
    _cache(index, pipe, cache_dir)
    with safe_open(str(text_file(cache_dir, SCENES[0])), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(text_file(cache_dir, SCENES[0]))
    save_file(tensors, text_file(cache_dir, SCENES[0]), metadata={**metadata, "caption": "an older caption"})
    vae_encode, text_forward = counters
    vae_encode.calls = text_forward.calls = 0
    report = _cache(index, pipe, cache_dir)
    assert report.num_written == 1 and vae_encode.calls == 0 and text_forward.calls == 1


def test_cache_with_other_settings_is_refused(index, pipe, tmp_path):
    cache_dir = tmp_path / "cache"
    _cache(index, pipe, cache_dir)
    files = _cache_files(cache_dir)
    config = (cache_dir / "cache_config.json").read_text()
    with pytest.raises(DatasetError, match=r"other settings \(num_frames 9 -> 5\)"):
        _cache(index, pipe, cache_dir, num_frames=5)
    with pytest.raises(DatasetError, match=r"max_sequence_length 24 -> 32"):
        _cache(index, pipe, cache_dir, max_sequence_length=32)
    other = tiny_pipeline(seed=1)
    with pytest.raises(DatasetError, match=r"vae\.fingerprint"):
        cache_dataset(index, other.vae, pipe.tokenizer, pipe.text_encoder, cache_dir, NUM_FRAMES, SIZE, SIZE, MAX_LEN)
    with pytest.raises(DatasetError, match=r"text_encoder\.fingerprint"):
        cache_dataset(index, pipe.vae, pipe.tokenizer, other.text_encoder, cache_dir, NUM_FRAMES, SIZE, SIZE, MAX_LEN)
    assert _cache_files(cache_dir) == files and (cache_dir / "cache_config.json").read_text() == config


def test_invalid_settings_write_nothing(index, pipe, tmp_path):
    with pytest.raises(DatasetError, match=r"shorter than the 13 frames to cache \(e\.g\. procedural/scene0001: 9"):
        _cache(index, pipe, tmp_path / "cache", num_frames=13)
    with pytest.raises(DatasetError, match="4k\\+1"):
        _cache(index, pipe, tmp_path / "cache", num_frames=8)
    with pytest.raises(DatasetError, match="multiple of 8"):
        _cache(index, pipe, tmp_path / "cache", height=20)
    assert not (tmp_path / "cache").exists()


def test_bfloat16_storage(index, pipe, tmp_path):
    cache_dir = tmp_path / "cache"
    _cache(index, pipe, cache_dir, storage_dtype="bfloat16")
    assert load_file(latents_file(cache_dir, SCENES[0], "cam01"))["latents"].dtype == torch.bfloat16
    assert read_cache_config(cache_dir)["storage_dtype"] == "bfloat16"


def test_lightning_path_writes_the_same_files(index, pipe, tmp_path):
    plain, lightning = tmp_path / "plain", tmp_path / "lightning"
    _cache(index, pipe, plain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about CPU runs and DataLoader workers
        report = _cache(index, pipe, lightning, use_lightning=True, devices=1, batch_size=2)
    assert report.num_written == 15
    relative = [path.relative_to(plain) for path in _cache_files(plain)]
    assert [path.relative_to(lightning) for path in _cache_files(lightning)] == relative
    for path in _cache_files(plain):
        expected, got = load_file(path), load_file(lightning / path.relative_to(plain))
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-5)
    assert json.loads((lightning / "cache_config.json").read_text()) == json.loads(
        (plain / "cache_config.json").read_text()
    )
    assert (lightning / "scene_index.json").is_file()


def test_cache_command_loads_a_model_folder(index, pipe, tmp_path, capsys):
    model_dir = tmp_path / "model"
    pipe.vae.save_pretrained(model_dir / "vae")
    pipe.tokenizer.save_pretrained(model_dir / "tokenizer")
    pipe.text_encoder.save_pretrained(model_dir / "text_encoder")
    parser = argparse.ArgumentParser()
    add_cache_arguments(parser)
    out = tmp_path / "cache"
    argv = [str(index.root), "--model", str(model_dir), "--out", str(out), "--frames", "9", "--height", "32"]
    argv += ["--width", "32", "--max-sequence-length", str(MAX_LEN), "--device", "cpu"]
    run_cache(parser.parse_args(argv))
    assert "encoded 15 of 15 items" in capsys.readouterr().out
    # Loaded from the folder, the models are the same models: the in-memory ones may complete this cache.
    assert _cache(index, pipe, out).num_skipped == 15
    with pytest.raises(DatasetError, match="has no vae/"):
        run_cache(parser.parse_args([str(index.root), "--model", str(tmp_path), "--out", str(out)]))
