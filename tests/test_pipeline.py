import numpy as np
import pytest
import torch

from syncammaster import CameraRig, SynCamMasterPipeline, SynCamMasterTransformer3DModel
from syncammaster.model_files import ModelFilesError
from syncammaster.models.transformer_syncammaster import to_official_state_dict
from syncammaster.pipeline import T5_CONTEXT_TOKEN_NUMBER, WAN_NEGATIVE_PROMPT

from tiny import CAPTIONS, tiny_pipeline

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


# ---------------------------------------------------------------------- diffusers' WanPipeline contract

RUN = {"num_inference_steps": 2, "output_type": "latent", **SIZE}


def test_output_has_frames_and_videos(pipe, rig):
    out = pipe(CAPTIONS[0], rig, seed=0, **RUN)
    assert out.frames is out.videos and out[0] is out.frames
    assert pipe(CAPTIONS[0], rig, seed=0, return_dict=False, **RUN)[0].shape == out.frames.shape


def test_inherited_properties_during_and_after_a_call(pipe, rig):
    seen = []

    def record(p, step, t, tensors):
        seen.append((p.guidance_scale, p.do_classifier_free_guidance, p.num_timesteps, p.current_timestep, t,
                     p.interrupt, p.attention_kwargs))
        return tensors

    kwargs = {"foo": 1}
    pipe(CAPTIONS[0], rig, seed=0, guidance_scale=3.0, attention_kwargs=kwargs, callback_on_step_end=record, **RUN)
    assert [s[:3] for s in seen] == [(3.0, True, 2)] * 2
    assert all(current is t for *_, current, t, _, _ in seen)
    assert all(interrupt is False and attention is kwargs for *_, interrupt, attention in seen)
    assert pipe.current_timestep is None  # cleared after the call
    pipe(CAPTIONS[0], rig, seed=0, guidance_scale=1.0, **RUN)
    assert pipe.guidance_scale == 1.0 and not pipe.do_classifier_free_guidance


def test_callback_changes_guidance_of_later_steps(pipe, rig):
    first_steps = []

    def lower_guidance(p, step, t, tensors):
        if step == 0:
            first_steps.append(tensors["latents"].clone())
        p._guidance_scale = 2.0
        return tensors

    constant = []
    five = pipe(CAPTIONS[0], rig, seed=1, guidance_scale=5.0,
                callback_on_step_end=lambda p, s, t, k: constant.append(k["latents"].clone()), **RUN).frames
    two = pipe(CAPTIONS[0], rig, seed=1, guidance_scale=2.0, **RUN).frames
    changed = pipe(CAPTIONS[0], rig, seed=1, guidance_scale=5.0, callback_on_step_end=lower_guidance, **RUN).frames
    assert torch.equal(first_steps[0], constant[0])  # step 0 ran at 5.0
    assert (changed - five).abs().max() > 1e-3 and (changed - two).abs().max() > 1e-3  # step 1 at 2.0
    assert pipe.guidance_scale == 2.0

    def raise_guidance(p, step, t, tensors):
        p._guidance_scale += 1.0
        return tensors

    pipe(CAPTIONS[0], rig, seed=1, guidance_scale=2.0, callback_on_step_end=raise_guidance, **RUN)
    assert pipe.guidance_scale == 2.0 + pipe.num_timesteps  # diffusers' test_callback_cfg


def test_callback_tensor_inputs_and_replacements(pipe, rig):
    names = []

    def zero_at_the_end(p, step, t, tensors):
        names.append(sorted(tensors))
        if step == p.num_timesteps - 1:
            tensors["latents"] = torch.zeros_like(tensors["latents"])
        return tensors

    out = pipe(CAPTIONS[0], rig, seed=0, callback_on_step_end=zero_at_the_end,
               callback_on_step_end_tensor_inputs=pipe._callback_tensor_inputs, **RUN).frames
    assert out.abs().sum() == 0
    assert names == [["latents", "negative_prompt_embeds", "prompt_embeds"]] * 2

    # Replaced prompt embeddings condition the later steps; returning nothing changes nothing.
    embeds, negative = pipe.encode_prompt(CAPTIONS[1], "", max_sequence_length=T5_CONTEXT_TOKEN_NUMBER)
    plain = pipe(CAPTIONS[0], rig, seed=0, negative_prompt="", **RUN).frames
    assert torch.equal(plain, pipe(CAPTIONS[0], rig, seed=0, negative_prompt="",
                                   callback_on_step_end=lambda *args: None, **RUN).frames)
    swapped = pipe(CAPTIONS[0], rig, seed=0, negative_prompt="", callback_on_step_end_tensor_inputs=["prompt_embeds"],
                   callback_on_step_end=lambda p, s, t, k: {"prompt_embeds": embeds}, **RUN).frames
    other = pipe(CAPTIONS[1], rig, seed=0, negative_prompt="", **RUN).frames
    assert (swapped - plain).abs().max() > 1e-3 and (swapped - other).abs().max() > 1e-3
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs` names \['noise'\]"):
        pipe(CAPTIONS[0], rig, callback_on_step_end_tensor_inputs=["noise"], **RUN)


def test_interrupt_skips_the_remaining_steps(pipe, rig):
    after_first = []

    def stop(p, step, t, tensors):
        after_first.append(tensors["latents"].clone())
        p._interrupt = True
        return tensors

    out = pipe(CAPTIONS[0], rig, seed=0, callback_on_step_end=stop, **RUN).frames
    assert len(after_first) == 1 and torch.equal(out, after_first[0])


def test_prompt_embeds_give_the_same_videos(pipe, rig):
    embeds, negative = pipe.encode_prompt(CAPTIONS[:2], [WAN_NEGATIVE_PROMPT] * 2,
                                          max_sequence_length=T5_CONTEXT_TOKEN_NUMBER)
    from_text = pipe(CAPTIONS[:2], rig, seed=0, **RUN).frames
    from_embeds = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, rig=rig, seed=0, **RUN).frames
    assert_same_videos(from_text, from_embeds)
    # Without a text encoder, embeddings are the way in.
    names = ("transformer", "vae", "scheduler")
    no_text = SynCamMasterPipeline(tokenizer=None, text_encoder=None, **{n: getattr(pipe, n) for n in names})
    no_text.set_progress_bar_config(disable=True)
    assert_same_videos(from_text, no_text(prompt_embeds=embeds, negative_prompt_embeds=negative, rig=rig, seed=0,
                                          **RUN).frames)
    with pytest.raises(ValueError, match="no text encoder"):
        no_text(CAPTIONS[0], rig, **RUN)
    with pytest.raises(ValueError, match="no text encoder"):
        no_text(prompt_embeds=embeds, rig=rig, **RUN)  # guidance needs the negative caption's embeddings too


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"prompt": CAPTIONS[0], "prompt_embeds": torch.zeros(1, 4, 16)}, "`prompt` or `prompt_embeds`, not both"),
        ({}, r"give a `prompt` \(or its `prompt_embeds`\)"),
        ({"prompt_embeds": torch.zeros(1, 4, 8)}, r"`prompt_embeds` must be a tensor \(prompts, tokens, 16\)"),
        ({"prompt_embeds": torch.full((1, 4, 16), float("nan"))}, "`prompt_embeds` holds NaN"),
        ({"prompt": CAPTIONS[0], "negative_prompt": "", "negative_prompt_embeds": torch.zeros(1, 4, 16)},
         "`negative_prompt` or `negative_prompt_embeds`, not both"),
        ({"prompt_embeds": torch.zeros(2, 4, 16), "negative_prompt_embeds": torch.zeros(1, 4, 16)},
         r"`negative_prompt_embeds` has shape \(1, 4, 16\)"),
        ({"prompt": CAPTIONS[0], "num_videos_per_prompt": 0}, "`num_videos_per_prompt` must be an integer >= 1"),
        ({"prompt": CAPTIONS[0], "latents": torch.zeros(2, 16, 3, 4, 6)}, r"`latents` has shape \(2, 16, 3, 4, 6\)"),
        ({"prompt": CAPTIONS[0], "output_type": "mp4"}, "`output_type` must be"),
        ({"prompt": CAPTIONS[0], "rig": None}, "give the cameras"),
    ],
)
def test_diffusers_style_inputs_are_checked(pipe, rig, kwargs, message):
    arguments = {"rig": rig, **RUN, **kwargs}
    with pytest.raises(ValueError, match=message):
        pipe(**arguments)


def test_generators_one_per_sample(pipe, rig):
    """A list holds one generator per sample (prompt x video): it draws all of that sample's views."""
    single = [pipe(caption, rig, generator=torch.Generator().manual_seed(s), **RUN).frames
              for caption, s in ((CAPTIONS[0], 3), (CAPTIONS[1], 4))]
    generators = [torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)]
    batch = pipe(CAPTIONS[:2], rig, generator=generators, **RUN).frames  # (2*V, C, F, h, w)
    assert_same_videos(batch, torch.cat(single))
    with pytest.raises(ValueError, match=r"got 3 generators for 2 sample\(s\) \(2 prompt\(s\) x 1 video"):
        pipe(CAPTIONS[:2], rig, generator=[torch.Generator() for _ in range(3)], **RUN)
    with pytest.raises(ValueError, match=r"got 3 generators for 4 sample\(s\) \(1 prompt\(s\) x 4 video"):
        pipe(CAPTIONS[0], rig, num_videos_per_prompt=4, generator=[torch.Generator() for _ in range(3)], **RUN)


def test_renoised_reference_with_a_generator_per_sample(pipe, rig):
    """The re-noised reference view draws fresh noise from each sample's generator, so samples stay independent."""
    reference = np.random.default_rng(0).random((9, 32, 48, 3))
    run = {**RUN, "reference_video": reference, "reference_view": 1, "reference_mode": "renoise"}
    single = [pipe(caption, rig, generator=torch.Generator().manual_seed(s), **run).frames
              for caption, s in ((CAPTIONS[0], 3), (CAPTIONS[1], 4))]
    generators = [torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)]
    assert_same_videos(pipe(CAPTIONS[:2], rig, generator=generators, **run).frames, torch.cat(single))


def test_num_videos_per_prompt(pipe, rig):
    videos = pipe(CAPTIONS[:2], rig, num_videos_per_prompt=2, seed=0, output_type="np", num_inference_steps=1,
                  **SIZE).frames
    assert videos.shape == (4, 3, 9, 32, 48, 3)  # (prompts x videos, views, T, H, W, 3)
    assert np.abs(videos[0] - videos[1]).max() > 0.05  # the same prompt, other noise
    # Sample order is prompt-major, and each sample equals the call that makes it alone.
    generators = [torch.Generator().manual_seed(s) for s in (5, 6, 7, 8)]
    batch = pipe(CAPTIONS[:2], rig, num_videos_per_prompt=2, generator=generators, **RUN).frames
    third = pipe(CAPTIONS[1], rig, generator=torch.Generator().manual_seed(7), **RUN).frames
    assert_same_videos(batch[6:9], third)


def test_given_latents(pipe, rig):
    def noise(seed):  # (V, C, F, h, w) at 32 x 48 pixels, 9 frames
        return torch.randn(3, 16, 3, 4, 6, generator=torch.Generator().manual_seed(seed))

    drawn = pipe(CAPTIONS[0], rig, generator=torch.Generator().manual_seed(9), **RUN).frames
    assert_same_videos(drawn, pipe(CAPTIONS[0], rig, latents=noise(9), **RUN).frames)
    assert (pipe(CAPTIONS[0], rig, latents=noise(10), **RUN).frames - drawn).abs().max() > 1e-3
    with pytest.raises(ValueError, match="NaN"):
        pipe(CAPTIONS[0], rig, latents=torch.full((3, 16, 3, 4, 6), float("nan")), **RUN)


def test_without_a_vae(pipe, rig, tmp_path):
    names = ("tokenizer", "text_encoder", "transformer", "scheduler")
    no_vae = SynCamMasterPipeline(vae=None, **{n: getattr(pipe, n) for n in names})
    no_vae.set_progress_bar_config(disable=True)
    assert_same_videos(no_vae(CAPTIONS[0], rig, seed=2, **RUN).frames, pipe(CAPTIONS[0], rig, seed=2, **RUN).frames)
    with pytest.raises(ValueError, match="output_type='latent'"):
        no_vae(CAPTIONS[0], rig, **{**RUN, "output_type": "np"})
    with pytest.raises(ValueError, match="encoded with the VAE"):
        no_vae(CAPTIONS[0], rig, reference_video=np.zeros((9, 32, 48, 3), np.uint8), **RUN)
    # Loading a full folder without its VAE, as in diffusers.
    pipe.save_pretrained(tmp_path / "model")
    loaded = SynCamMasterPipeline.from_pretrained(tmp_path / "model", vae=None)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.vae is None
    assert_same_videos(loaded(CAPTIONS[0], rig, seed=2, **RUN).frames, pipe(CAPTIONS[0], rig, seed=2, **RUN).frames)


def test_text_encoder_alone(pipe, rig):
    encoder_only = SynCamMasterPipeline(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, transformer=None,
                                        vae=None, scheduler=None)
    embeds, negative = encoder_only.encode_prompt(CAPTIONS[0], "", max_sequence_length=16)
    expected, _ = pipe.encode_prompt(CAPTIONS[0], "", max_sequence_length=16)
    assert embeds.shape == (1, 16, 16) and negative.shape == (1, 16, 16) and torch.equal(embeds, expected)
    with pytest.raises(ValueError, match="no transformer"):
        encoder_only(CAPTIONS[0], rig, **RUN)


def test_layerwise_casting_with_sync(rig):
    """diffusers' fp8 weight storage (``enable_layerwise_casting``) with the multi-view module on."""
    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(CAPTIONS[0], rig, seed=0, **RUN).frames
    pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    cast = pipe(CAPTIONS[0], rig, seed=0, **RUN).frames
    assert torch.isfinite(cast).all() and cast.dtype == torch.float32
    assert (cast - reference).abs().max() < 0.5 * reference.abs().max()  # fp8 rounding, not another result
