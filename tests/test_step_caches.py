import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig

from syncammaster import CameraRig
from syncammaster.cli import main
from syncammaster.step_caches import STEP_CACHE_METHODS, step_cache_config

from tiny import CAPTIONS

SIZE = {"height": 32, "width": 48, "num_frames": 5}
STEPS = 8


@pytest.fixture(scope="module")
def work(pipe):
    """Rows actually computed by the attention layers and feed-forwards of the transformer's blocks."""
    rows = {"attention": 0, "ffn": 0}

    def counter(kind):
        def count(module, inputs, output):
            rows[kind] += inputs[0].shape[0]

        return count

    # The first linear of each layer runs only when the layer really computes (a cache hook skips it whole).
    for block in pipe.transformer.blocks:
        for attention in (block.attn1, block.mvs_attn, block.attn2):
            attention.to_q.register_forward_hook(counter("attention"))
        block.ffn.net[0].register_forward_hook(counter("ffn"))
    return rows


def sample(pipe, work, seed=0, **kwargs):
    work.update(attention=0, ffn=0)
    rig = CameraRig.preset("arc", num_views=2)
    latents = pipe(CAPTIONS[0], rig, num_inference_steps=STEPS, seed=seed, output_type="latent", **SIZE, **kwargs)
    return latents.videos, dict(work)


@pytest.fixture(scope="module")
def uncached(pipe, work):
    return sample(pipe, work)


@pytest.mark.parametrize("name", list(STEP_CACHE_METHODS))
def test_cache_skips_work_and_stays_close(pipe, work, uncached, name):
    reference, full_work = uncached
    transformer = pipe.transformer
    transformer.enable_cache(step_cache_config(name, None, lambda: transformer.current_timestep))
    try:
        cached, cached_work = sample(pipe, work)
        again, _ = sample(pipe, work)
    finally:
        transformer.disable_cache()
    assert not transformer.is_cache_enabled
    assert sum(cached_work.values()) < sum(full_work.values())  # fewer attention / FFN rows really ran
    relative_error = ((cached - reference).norm() / reference.norm()).item()
    # TaylorSeer-Lite extrapolates the whole model's output, not each layer's: cruder on this tiny random model
    # (the shipped model's videos: RESULTS.md, "Step caches").
    assert 0 < relative_error < (0.05 if name == "taylorseer-lite" else 0.02)
    torch.testing.assert_close(again, cached, rtol=0, atol=1e-5)  # the cache state does not leak between calls
    after, after_work = sample(pipe, work)
    assert after_work == full_work
    torch.testing.assert_close(after, reference, rtol=0, atol=1e-5)


def test_diffusers_config_directly_and_a_cache_at_a_time(pipe, work, uncached):
    reference, full_work = uncached
    transformer = pipe.transformer
    transformer.enable_cache(FirstBlockCacheConfig(threshold=0.5))
    try:
        with pytest.raises(ValueError, match="already been enabled"):
            transformer.enable_cache(FirstBlockCacheConfig(threshold=0.1))
        cached, cached_work = sample(pipe, work)
    finally:
        transformer.disable_cache()
    # A high threshold reuses the tail blocks at most steps: the second block runs far less than the first.
    assert cached_work["ffn"] < 0.75 * full_work["ffn"]
    assert not torch.equal(cached, reference)


def test_cache_during_the_call_reads_the_timestep(pipe, work):
    transformer = pipe.transformer
    seen = []
    transformer.enable_cache(step_cache_config("pyramid-attention", None, lambda: transformer.current_timestep))
    try:
        sample(pipe, work, callback_on_step_end=lambda p, step, t, k: seen.append((transformer.current_timestep, t)))
    finally:
        transformer.disable_cache()
    assert transformer.current_timestep is None
    # During a step the hook holds that step's timestep (cleared after the call).
    assert len(seen) == STEPS and all(recorded == pytest.approx(float(t), abs=2.0) for recorded, t in seen)


@pytest.mark.parametrize(
    "name, threshold, message",
    [
        ("fast", None, "unknown cache 'fast'"),
        ("first-block", 0, "must be > 0"),
        ("taylorseer", 2.5, "whole number of steps"),
    ],
)
def test_bad_cache_settings(name, threshold, message):
    with pytest.raises(ValueError, match=message):
        step_cache_config(name, threshold, lambda: 0.0)


def test_cli_cache(pipe, tmp_path, capsys):
    pipe.save_pretrained(tmp_path / "model")
    common = ["generate", "--prompt", CAPTIONS[0], "--views", "2", "--frames", "5", "--height", "32", "--width", "32",
              "--steps", "4", "--quiet", "--model", str(tmp_path / "model")]
    assert main([*common, "--cache", "first-block", "--out", str(tmp_path / "cached")]) == 0
    assert (tmp_path / "cached" / "videos" / "cam02.mp4").is_file()
    for extra, message in [
        (["--cache-threshold", "0.2"], "--cache-threshold needs --cache NAME"),
        (["--cache", "taylorseer", "--cache-threshold", "2.5"], "whole number of steps"),
        (["--cache", "faster", "--no-sync"], "drop --no-sync"),
    ]:
        capsys.readouterr()
        assert main([*common, *extra, "--out", str(tmp_path / "refused")]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "refused").exists()


def test_mag_cache_with_given_ratios(pipe, work, uncached):
    """MagCache (not offered by the command line: its magnitude ratios are calibrated per model) runs through the
    same block registration."""
    from diffusers.hooks import MagCacheConfig

    reference, full_work = uncached
    transformer = pipe.transformer
    transformer.enable_cache(MagCacheConfig(mag_ratios=[1.0] * STEPS, num_inference_steps=STEPS, threshold=0.1))
    try:
        cached, cached_work = sample(pipe, work)
    finally:
        transformer.disable_cache()
    assert cached_work["ffn"] < full_work["ffn"]
    assert 0 < ((cached - reference).norm() / reference.norm()).item() < 0.05


def test_diffusers_timestep_callback_reads_the_pipeline(pipe, work, uncached):
    """diffusers' recipe ``current_timestep_callback=lambda: pipe.current_timestep`` works and gives the videos of
    the transformer's own recorded timestep."""
    transformer = pipe.transformer
    results = []
    for current in (lambda: pipe.current_timestep, lambda: transformer.current_timestep):
        transformer.enable_cache(step_cache_config("pyramid-attention", None, current))
        try:
            results.append(sample(pipe, work))
        finally:
            transformer.disable_cache()
    (from_pipe, pipe_work), (from_transformer, transformer_work) = results
    assert torch.equal(from_pipe, from_transformer) and pipe_work == transformer_work
    assert pipe_work["attention"] < uncached[1]["attention"]  # the cache did skip attention by the timestep
    assert pipe.current_timestep is None  # cleared after the call
