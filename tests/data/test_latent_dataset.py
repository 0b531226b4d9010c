"""Tests for syncammaster.data.dataset: LatentViewDataset items, groups, cameras, sampling and batching."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from syncammaster.cameras import CameraRig
from syncammaster.data import (
    DatasetError,
    DataWarning,
    LatentViewDataset,
    SceneIndex,
    cache_dataset,
    collate_views,
    latents_file,
    text_file,
    view_groups,
)
from syncammaster.scene import Scene

from tiny import CAPTIONS, tiny_pipeline
from tiny_scenes import (
    CAMERAS,
    NUM_FRAMES,
    SCENE_ANGLES,
    SIZE,
    VALID_PAIRS,
    make_dataset,
    rig_from_angles,
    smooth_video,
    write_metadata,
)

SCENES = list(SCENE_ANGLES)
MAX_LEN = 24
F_LATENT = (NUM_FRAMES - 1) // 4 + 1
LATENT_SHAPE = (16, F_LATENT, SIZE // 8, SIZE // 8)  # (C, F_latent, h, w)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """(index, cache folder) of the tiny dataset, cached once for the module."""
    pipe = tiny_pipeline()
    index = SceneIndex.build(make_dataset(tmp_path_factory.mktemp("dataset")), progress=False)
    cache_dir = tmp_path_factory.mktemp("cache")
    cache_dataset(
        index, pipe.vae, pipe.tokenizer, pipe.text_encoder, cache_dir, NUM_FRAMES, SIZE, SIZE, MAX_LEN, progress=False
    )
    return index, cache_dir


def _check_item(item, index, cache_dir, num_views):
    scene = index[item["scene"]]
    views = item["views"]
    assert len(views) == num_views and len(set(views)) == num_views
    assert item["latents"].shape == (num_views, *LATENT_SHAPE) and item["latents"].dtype == torch.float32
    for v, view in enumerate(views):
        torch.testing.assert_close(item["latents"][v], load_file(latents_file(cache_dir, scene.name, view))["latents"])
    embeds = load_file(text_file(cache_dir, scene.name))["prompt_embeds"]  # (L_valid, D)
    assert item["prompt_embeds"].shape == (MAX_LEN, 16) and item["prompt_embeds"].dtype == torch.float32
    torch.testing.assert_close(item["prompt_embeds"][: len(embeds)], embeds)
    assert (item["prompt_embeds"][len(embeds) :] == 0).all()
    # The camera input is the embedding of exactly this ordered group: view 0 is the reference (identity).
    expected = scene.rig.select(views).embedding(NUM_FRAMES)  # (V, F_latent, 12)
    assert item["camera"].shape == (num_views, F_LATENT, 12) and item["camera"].dtype == torch.float32
    torch.testing.assert_close(item["camera"], expected)
    torch.testing.assert_close(item["camera"][0], torch.eye(4)[:3].reshape(12).expand(F_LATENT, 12))


def test_single_view_items_are_every_cached_video(cached):
    index, cache_dir = cached
    dataset = LatentViewDataset(index, cache_dir, num_views=1, max_sequence_length=MAX_LEN)
    assert len(dataset) == 12
    seen = []
    for i in range(len(dataset)):
        item = dataset[i]
        _check_item(item, index, cache_dir, 1)
        seen.append((item["scene"], item["views"][0]))
    assert sorted(seen) == sorted((scene, camera) for scene in SCENES for camera in CAMERAS)


def test_two_view_items_list_every_valid_ordered_pair(cached):
    index, cache_dir = cached
    dataset = LatentViewDataset(index, cache_dir, num_views=2, max_sequence_length=MAX_LEN)
    expected = sorted((scene.name, group) for scene in index for group in view_groups(scene.rig, 2))
    assert len(dataset) == len(expected) == 16
    groups = []
    for i in range(len(dataset)):
        item = dataset[i]
        _check_item(item, index, cache_dir, 2)
        groups.append((item["scene"], tuple(item["views"])))
    assert sorted(groups) == expected
    for scene, (first, second) in groups:
        assert (first, second) in VALID_PAIRS[scene] or (second, first) in VALID_PAIRS[scene]


def test_sampled_items_are_deterministic_and_valid(cached):
    index, cache_dir = cached
    dataset = LatentViewDataset(index, cache_dir, num_views=2, max_sequence_length=MAX_LEN, seed=3, length=40)
    assert len(dataset) == 40
    again = LatentViewDataset(index, cache_dir, num_views=2, max_sequence_length=MAX_LEN, seed=3, length=40)
    other = LatentViewDataset(index, cache_dir, num_views=2, max_sequence_length=MAX_LEN, seed=4, length=40)
    groups = [dataset.group(i) for i in range(40)]
    assert [again.group(i) for i in range(40)] == groups
    assert [other.group(i) for i in range(40)] != groups
    assert {scene.name for scene, _ in groups} == set(SCENES)
    for scene, views in groups:
        assert views in view_groups(scene.rig, 2)
    _check_item(dataset[7], index, cache_dir, 2)
    with pytest.raises(IndexError):
        dataset.group(40)


def test_three_views_use_the_only_valid_triple(cached):
    index, cache_dir = cached
    with pytest.warns(DataWarning, match=r"left out 2 of 3 scenes: 2 without 3 cameras within"):
        dataset = LatentViewDataset(index, cache_dir, num_views=3, max_sequence_length=MAX_LEN)
    assert len(dataset) == 6  # the orderings of scene0002's (cam01, cam02, cam03)
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["scene"] == "procedural/scene0002" and sorted(item["views"]) == ["cam01", "cam02", "cam03"]
    _check_item(dataset[5], index, cache_dir, 3)


def test_incomplete_scenes_are_left_out_when_built(cached, tmp_path):
    index, cache_dir = cached
    partial = tmp_path / "cache"
    shutil.copytree(cache_dir, partial)
    latents_file(partial, SCENES[0], "cam03").unlink()
    text_file(partial, SCENES[2]).unlink()
    with pytest.warns(DataWarning, match=r"left out 2 of 3 scenes: 2 with an incomplete cache \(procedural/scene0001"):
        dataset = LatentViewDataset(index, partial, num_views=2, max_sequence_length=MAX_LEN)
    assert len(dataset) == 6 and {dataset[i]["scene"] for i in range(len(dataset))} == {SCENES[1]}


def test_settings_must_match_the_cache(cached, tmp_path):
    index, cache_dir = cached
    with pytest.raises(DatasetError, match="max_sequence_length=512 but the cache"):
        LatentViewDataset(index, cache_dir, num_views=2)
    with pytest.raises(DatasetError, match="not a latent cache"):
        LatentViewDataset(index, tmp_path, num_views=2, max_sequence_length=MAX_LEN)
    with pytest.raises(DatasetError, match="no scene of the cache"), pytest.warns(DataWarning):
        LatentViewDataset(index, cache_dir, num_views=5, max_sequence_length=MAX_LEN)


def test_from_cache_and_batches(cached):
    _, cache_dir = cached
    dataset = LatentViewDataset.from_cache(cache_dir, num_views=2, max_sequence_length=MAX_LEN)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, collate_fn=collate_views)
    batch = next(iter(loader))
    assert batch["latents"].shape == (4, 2, *LATENT_SHAPE)
    assert batch["prompt_embeds"].shape == (4, MAX_LEN, 16)
    assert batch["camera"].shape == (4, 2, F_LATENT, 12)
    assert len(batch["scene"]) == 4 and all(len(views) == 2 for views in batch["views"])


def test_moving_cameras_use_the_poses_of_the_cached_frames(tmp_path):
    # One scene whose cameras move (a pose per video frame); the cache holds the first 5 of its 9 frames.
    pipe = tiny_pipeline()
    static = rig_from_angles([0.0, 10.0, 20.0], [0.0, 0.0, 0.0])
    c2w = np.repeat(static.c2w[:, None], NUM_FRAMES, axis=1)  # (V, T, 4, 4)
    c2w[:, :, 0, 3] += 0.05 * np.arange(NUM_FRAMES)  # the rig slides along world X
    rig = CameraRig(c2w, static.names)
    videos = [smooth_video(v) for v in range(rig.num_views)]
    Scene(videos, rig, prompt=CAPTIONS[0]).write(tmp_path / "data" / "train" / "moving" / "scene1", grid=False)
    write_metadata(tmp_path / "data", [(f"moving/scene1/videos/{name}.mp4", CAPTIONS[0]) for name in rig.names])
    index = SceneIndex.build(tmp_path / "data", progress=False)
    assert not index["moving/scene1"].rig.is_static
    cache_dir = tmp_path / "cache"
    cache_dataset(index, pipe.vae, pipe.tokenizer, pipe.text_encoder, cache_dir, 5, SIZE, SIZE, MAX_LEN, progress=False)
    dataset = LatentViewDataset(index, cache_dir, num_views=2, max_sequence_length=MAX_LEN)
    for i in range(len(dataset)):
        item = dataset[i]
        expected = CameraRig(c2w[:, :5], rig.names).select(item["views"]).embedding(5)  # (2, 2, 12)
        torch.testing.assert_close(item["camera"], expected)
        assert item["latents"].shape == (2, 16, 2, SIZE // 8, SIZE // 8)
