import numpy as np
import pytest
import torch

from syncammaster import CameraRig, SynCamMasterPipeline, SynCamMasterTransformer3DModel
from syncammaster.model_files import ModelFilesError
from syncammaster.models.transformer_syncammaster import to_official_state_dict

from tiny import CAPTIONS

SIZE = {"height": 32, "width": 48, "num_frames": 9}


def rebuilt(pipe, folder, **config):
    """``pipe``'s components in a pipeline with other config values, saved to ``folder`` and loaded back."""
    names = ("tokenizer", "text_encoder", "transformer", "vae", "scheduler")
    SynCamMasterPipeline(**{name: getattr(pipe, name) for name in names}, **config).save_pretrained(folder)
    loaded = SynCamMasterPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    return loaded


def assert_same_videos(a, b):
    """Same seed, same videos, up to the last-bit rounding that the CPU thread pool may change between runs."""
    torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def rig():
    return CameraRig.preset("arc", num_views=3)


def test_three_views_shapes_and_seed(pipe, rig):
    a = pipe(CAPTIONS[0], rig, num_inference_steps=2, seed=7, **SIZE).videos
    b = pipe(CAPTIONS[0], rig, num_inference_steps=2, seed=7, **SIZE).videos
    c = pipe(CAPTIONS[0], rig, num_inference_steps=2, seed=8, **SIZE).videos
    assert a.shape == (1, 3, 9, 32, 48, 3)
    assert a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    assert_same_videos(a, b)
    assert np.abs(a - c).max() > 0.1


def test_batch_of_prompts_and_output_types(pipe, rig):
    out = pipe(CAPTIONS[:2], rig, num_inference_steps=1, seed=0, output_type="pt", **SIZE).videos
    assert out.shape == (2, 3, 9, 3, 32, 48)
    pil = pipe(CAPTIONS[0], rig, num_inference_steps=1, seed=0, output_type="pil", **SIZE).videos
    assert len(pil) == 1 and len(pil[0]) == 3 and len(pil[0][0]) == 9 and pil[0][0][0].size == (48, 32)
    latents = pipe(CAPTIONS[0], rig, num_inference_steps=1, seed=0, output_type="latent", **SIZE).videos
    assert latents.shape == (3, 16, 3, 4, 6)


def test_no_sync_bypasses_mvs(pipe, rig):
    synced = pipe(CAPTIONS[1], rig, num_inference_steps=2, seed=1, output_type="latent", **SIZE).videos
    independent = pipe(CAPTIONS[1], rig, num_inference_steps=2, seed=1, output_type="latent", sync=False, **SIZE).videos
    assert not torch.allclose(synced, independent)


def test_views_decode_together_as_one_at_a_time(pipe, rig):
    latents = pipe(CAPTIONS[0], rig, num_inference_steps=1, seed=2, output_type="latent", **SIZE).videos
    together = pipe.decode_latents(latents)
    pipe.vae.enable_slicing()
    try:
        one_at_a_time = pipe.decode_latents(latents)
    finally:
        pipe.vae.disable_slicing()
    assert together.shape == (3, 3, 9, 32, 48)
    torch.testing.assert_close(together, one_at_a_time, rtol=0, atol=1e-5)
    assert (together[0] - together[1]).abs().max() > 1e-3  # the views stay distinct


def test_released_sampling_schedule(pipe, rig):
    pipe(CAPTIONS[0], rig, num_inference_steps=4, seed=0, output_type="latent", **SIZE)
    sigmas = np.linspace(1, 0, 5)[:-1]
    shifted = 5 * sigmas / (1 + 4 * sigmas)
    np.testing.assert_allclose(pipe.scheduler.sigmas.numpy(), np.append(shifted, 0.0), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"height": 40}, r"`height`=40 is not a positive multiple of 16; nearest valid: 32 or 48"),
        ({"width": 50}, r"`width`=50 is not a positive multiple of 16"),
        ({"num_frames": 10}, r"`num_frames`=10 is not of the form 4k\+1; nearest valid: 9 or 13"),
        ({"num_inference_steps": 0}, r"num_inference_steps"),
    ],
)
def test_check_inputs(pipe, rig, kwargs, message):
    arguments = {**SIZE, "num_inference_steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        pipe(CAPTIONS[0], rig, **arguments)


def test_rig_that_does_not_fit(pipe, rig):
    per_frame = CameraRig(np.repeat(rig.c2w[:, None], 5, axis=1))  # 5 frames of cameras
    with pytest.raises(ValueError, match="5"):
        pipe(CAPTIONS[0], per_frame, num_inference_steps=1, **SIZE)
    with pytest.raises(ValueError, match=r"camera embedding has shape \(3, 2, 12\)"):
        pipe(CAPTIONS[0], torch.zeros(3, 2, 12), num_inference_steps=1, **SIZE)
    bad = torch.zeros(3, 3, 12)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pipe(CAPTIONS[0], bad, num_inference_steps=1, **SIZE)


def test_save_and_load_folder(pipe, rig, tmp_path):
    pipe.save_pretrained(tmp_path / "model")
    loaded = SynCamMasterPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.transformer, SynCamMasterTransformer3DModel)
    assert loaded.config.focal_length_per_side == pytest.approx(0.9)
    a = pipe(CAPTIONS[2], rig, num_inference_steps=2, seed=3, **SIZE).videos
    b = loaded(CAPTIONS[2], rig, num_inference_steps=2, seed=3, **SIZE).videos
    assert_same_videos(a, b)


def test_wan_folder_plus_released_checkpoint(pipe, rig, tmp_path):
    """The released-weights path: a Wan2.1 diffusers folder + a step20000.ckpt-style state dict."""
    wan = tmp_path / "Wan2.1-T2V-tiny-Diffusers"
    for name in ("tokenizer", "text_encoder", "vae"):
        getattr(pipe, name).save_pretrained(wan / name)
    pipe.transformer.save_pretrained(wan / "transformer")  # its config names the head count
    torch.save(to_official_state_dict(pipe.transformer), tmp_path / "step20000.ckpt")

    loaded = SynCamMasterPipeline.from_wan(wan, tmp_path / "step20000.ckpt", torch_dtype=torch.float32)
    loaded.set_progress_bar_config(disable=True)
    loaded.register_to_config(focal_length_per_side=pipe.config.focal_length_per_side)
    a = pipe(CAPTIONS[0], rig, num_inference_steps=2, seed=5, output_type="latent", **SIZE).videos
    b = loaded(CAPTIONS[0], rig, num_inference_steps=2, seed=5, output_type="latent", **SIZE).videos
    torch.testing.assert_close(a, b)
    with pytest.raises(ModelFilesError, match="does not exist; download Wan-AI/Wan2.1-T2V"):
        SynCamMasterPipeline.from_wan(tmp_path / "nowhere", tmp_path / "step20000.ckpt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFilesError, match="not a Wan2.1 diffusers folder"):
        SynCamMasterPipeline.from_wan(tmp_path / "empty", tmp_path / "step20000.ckpt")


def test_training_intrinsics(pipe):
    intrinsics = pipe.training_intrinsics(48, 32)
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == pytest.approx((43.2, 43.2, 24.0, 16.0))


def test_default_negative_prompt_comes_from_the_model(pipe, rig, tmp_path):
    from syncammaster.pipeline import WAN_NEGATIVE_PROMPT

    assert pipe.config.negative_prompt == WAN_NEGATIVE_PROMPT  # the released model's default
    run = {"num_inference_steps": 2, "seed": 5, "output_type": "latent", **SIZE}
    default = pipe(CAPTIONS[0], rig, **run).videos
    assert_same_videos(default, pipe(CAPTIONS[0], rig, negative_prompt=WAN_NEGATIVE_PROMPT, **run).videos)
    empty = pipe(CAPTIONS[0], rig, negative_prompt="", **run).videos
    assert (default - empty).abs().max() > 0.1

    # A model trained with caption dropout records the empty caption as its default; the folder keeps it.
    loaded = rebuilt(pipe, tmp_path / "model", negative_prompt="")
    assert loaded.config.negative_prompt == ""
    assert_same_videos(loaded(CAPTIONS[0], rig, **run).videos, empty)


def test_default_size_comes_from_the_model(pipe, rig, tmp_path):
    assert (pipe.config.default_height, pipe.config.default_width, pipe.config.default_num_frames) == (480, 832, 81)
    loaded = rebuilt(pipe, tmp_path / "model", default_height=32, default_width=48, default_num_frames=9)
    videos = loaded(CAPTIONS[0], rig, num_inference_steps=1, seed=0).videos
    assert videos.shape == (1, 3, 9, 32, 48, 3)
    assert loaded(CAPTIONS[0], rig, num_inference_steps=1, seed=0, height=16).videos.shape == (1, 3, 9, 16, 48, 3)


def test_default_guidance_scale_comes_from_the_model(pipe, rig, tmp_path):
    assert pipe.config.default_guidance_scale == 5.0  # the release's
    run = {"num_inference_steps": 2, "seed": 5, "output_type": "latent", **SIZE}
    default = pipe(CAPTIONS[0], rig, **run).videos
    assert_same_videos(default, pipe(CAPTIONS[0], rig, guidance_scale=5.0, **run).videos)

    loaded = rebuilt(pipe, tmp_path / "model", default_guidance_scale=1.0)  # a model that samples without guidance
    assert loaded.config.default_guidance_scale == 1.0
    unguided = loaded(CAPTIONS[0], rig, **run).videos
    assert_same_videos(unguided, pipe(CAPTIONS[0], rig, guidance_scale=1.0, **run).videos)
    assert (default - unguided).abs().max() > 0.1
    with pytest.raises(ValueError, match="default_guidance_scale"):
        rebuilt(pipe, tmp_path / "bad", default_guidance_scale=float("nan"))
