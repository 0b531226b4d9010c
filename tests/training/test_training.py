import csv
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from torch.utils.data import Dataset

from syncammaster import SynCamMasterTransformer3DModel
from syncammaster.training import FlowMatchingModule, FlowSchedule, VAEModule, load_config
from syncammaster.training.config import config_from_dict
from syncammaster.training.modules import LearningRateSchedule
from syncammaster.training.runner import CHECKPOINT_DIR, METRICS_FILE, fit
from syncammaster.training.stages import _fit_transformer, lr_schedule

pytestmark = pytest.mark.slow  # training chains

TEXT_DIM = 8


def tiny_wan(seed=0):
    torch.manual_seed(seed)
    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
                                 out_channels=4, text_dim=TEXT_DIM, freq_dim=16, ffn_dim=24, num_layers=2)


class RandomLatents(Dataset):
    """Item i is a pure function of i (as the real latent datasets are)."""

    def __init__(self, views: int, length: int = 1000):
        self.views, self.length = views, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        return {
            "latents": torch.randn(self.views, 4, 2, 4, 6, generator=g),
            "prompt_embeds": torch.randn(5, TEXT_DIM, generator=g),
            "camera": torch.randn(self.views, 2, 12, generator=g),
        }


def config(tmp_path, **overrides):
    values = {"stage": "base", "data_root": str(tmp_path), "output_dir": str(tmp_path / "run"),
              "components": str(tmp_path), "max_steps": 6, "checkpoint_every": 3, "log_every": 1, "num_workers": 0,
              "batch_size": 2, "learning_rate": 1e-3, "num_frames": 5, "height": 32, "width": 48}
    values.update(overrides)
    return config_from_dict(values)


def test_flow_schedule_matches_release():
    schedule = FlowSchedule(shift=5.0)
    assert len(schedule.sigmas) == 1000
    assert schedule.sigmas[0] == pytest.approx(1.0) and schedule.sigmas[-1] == pytest.approx(5e-3 / 1.004, rel=1e-3)
    assert schedule.weights.mean() == pytest.approx(1.0, rel=1e-5)
    assert schedule.weights.min() == pytest.approx(0.0, abs=1e-6)
    assert abs(schedule.timesteps[schedule.weights.argmax()] - 500) < 3


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    module = FlowMatchingModule(tiny_wan(), learning_rate=3e-3)
    batch = torch.utils.data.default_collate([RandomLatents(1)[i] for i in range(2)])
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(30):
        loss = module.loss(batch, torch.Generator().manual_seed(0))  # same noise and timestep every step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_caption_dropout_trains_dropped_groups_on_the_empty_caption():
    batch = torch.utils.data.default_collate([RandomLatents(2)[i] for i in range(3)])
    null = torch.randn(5, TEXT_DIM, generator=torch.Generator().manual_seed(9))
    transformer = SynCamMasterTransformer3DModel.from_wan(tiny_wan())
    plain = FlowMatchingModule(transformer)
    every = FlowMatchingModule(transformer, caption_dropout=0.999999, null_prompt_embeds=null)
    # Dropping every caption is the same as training on the empty caption: same noise, same timesteps.
    with torch.no_grad():
        dropped = every.loss(batch, torch.Generator().manual_seed(4))
        on_null = plain.loss({**batch, "prompt_embeds": null.expand(3, -1, -1)}, torch.Generator().manual_seed(4))
        with_captions = plain.loss(batch, torch.Generator().manual_seed(4))
    assert dropped.item() == pytest.approx(on_null.item(), rel=1e-6)
    assert abs(dropped.item() - with_captions.item()) > 1e-4
    with pytest.raises(ValueError, match="null_prompt_embeds"):
        FlowMatchingModule(tiny_wan(), caption_dropout=0.1)
    with pytest.raises(ValueError, match="caption_dropout"):
        config(Path("."), caption_dropout=1.0)


def read_losses(run):
    with (run / METRICS_FILE).open() as handle:
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(handle)}


class RandomVideos(Dataset):
    """Item i is a pure function of i: a 5-frame 16x16 clip in [-1, 1]."""

    def __len__(self):
        return 1000

    def __getitem__(self, index):
        return {"video": torch.rand(3, 5, 16, 16, generator=torch.Generator().manual_seed(index)) * 2 - 1}


@pytest.mark.parametrize("stage", ["base", "sync", "vae"])
def test_resume_gives_the_same_next_steps(tmp_path, stage):
    def make_module():
        if stage == "vae":  # its random draws: the latent samples and the frames coded as images
            return VAEModule(tiny_vae(), learning_rate=1e-3, image_frames=2, seed=3)
        transformer = tiny_wan()
        if stage == "sync":
            transformer = SynCamMasterTransformer3DModel.from_wan(transformer)
        return FlowMatchingModule(transformer, learning_rate=1e-3, seed=3)

    def data():
        return RandomVideos() if stage == "vae" else RandomLatents(2 if stage == "sync" else 1)

    straight = config(tmp_path / "a", stage="base")
    fit(straight, make_module(), data(), progress_bar=False)

    interrupted = config(tmp_path / "b", stage="base", max_steps=3)
    fit(interrupted, make_module(), data(), progress_bar=False)
    assert (interrupted.run_dir / CHECKPOINT_DIR / "last.ckpt").is_file()
    # As if it had gone on to step 4, with no checkpoint there, and been killed in mid-write of a later row.
    with (interrupted.run_dir / METRICS_FILE).open("a") as handle:
        handle.write("4,99.0,1.000e-03,0.5\r\n1")
    resumed_module = make_module()
    fit(config(tmp_path / "b", stage="base"), resumed_module, data(), progress_bar=False)

    a, b = read_losses(straight.run_dir), read_losses(interrupted.run_dir)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    with (interrupted.run_dir / METRICS_FILE).open() as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert steps == [1, 2, 3, 4, 5, 6]  # the rows the killed run logged after its checkpoint are gone
    for step in range(1, 7):
        assert a[step] == pytest.approx(b[step], rel=1e-5), step


def test_learning_rate_warms_up_holds_and_decays(tmp_path):
    schedule = LearningRateSchedule(warmup_steps=4, decay_steps=10, max_steps=30)
    assert [schedule(step) for step in (0, 3, 19, 20)] == pytest.approx([0.25, 1.0, 1.0, 1.0])
    assert schedule(25) == pytest.approx(0.5) and schedule(29) < 0.03 and schedule(40) == 0.0
    with pytest.raises(ValueError, match="decay_steps"):
        config(tmp_path, decay_steps=7)

    # Resumed with a larger max_steps, the run goes on at the full rate and decays at its new end: the checkpoint's
    # scheduler state must not bring the old end back.
    def learning_rates(run):
        with (run / METRICS_FILE).open() as handle:
            return {int(row["step"]): float(row["lr"]) for row in csv.DictReader(handle)}

    def run(max_steps):
        settings = config(tmp_path, max_steps=max_steps, decay_steps=2, checkpoint_every=4)
        module = FlowMatchingModule(tiny_wan(), learning_rate=1e-3, schedule=lr_schedule(settings))
        fit(settings, module, RandomLatents(1), progress_bar=False)

    run(4)
    run(8)
    rates = learning_rates(tmp_path / "run")
    assert rates[2] == pytest.approx(1e-3) and rates[4] < 1e-3  # the first run decayed at its end ...
    assert rates[6] == pytest.approx(1e-3) and rates[8] < 1e-3  # ... the resumed one at its own


def test_sync_stage_trains_only_mvs(tmp_path):
    base = tiny_wan()
    transformer = SynCamMasterTransformer3DModel.from_wan(base)
    before = {k: v.clone() for k, v in transformer.state_dict().items()}
    module = FlowMatchingModule(transformer, learning_rate=1e-2)
    fit(config(tmp_path, max_steps=3), module, RandomLatents(2), progress_bar=False)
    mvs = {name for name, _ in transformer.named_mvs_parameters()}
    after = transformer.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and changed <= mvs
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT_DIR / "last.ckpt", weights_only=False)
    assert {k.removeprefix("transformer.") for k in checkpoint["state_dict"]} == mvs


def tiny_vae(seed=0):
    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)


def test_vae_loss_decreases_on_a_fixed_clip():
    module = VAEModule(tiny_vae(), learning_rate=1e-2)
    ramp = torch.linspace(-1, 1, 16)
    video = torch.stack([ramp[None, :].expand(16, 16), ramp[:, None].expand(16, 16), ramp[None, :] * ramp[:, None]])
    video = video[:, None].expand(3, 5, 16, 16)[None].contiguous()  # (1, 3, 5, 16, 16) smooth gradients
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(25):
        torch.manual_seed(1)
        loss, _ = module.loss(video)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_vae_loss_adds_frames_coded_as_images():
    torch.manual_seed(0)
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    module = VAEModule(tiny_vae(), image_frames=2)
    total, parts = module.loss(video, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)  # the same draws in turn: the clips, which frames, the images
    video_total, video_parts = module.reconstruction_loss(video, generator)
    picks = torch.randperm(5, generator=generator)[:2]
    images = torch.stack([video[b, :, p] for b in range(2) for p in picks])[:, :, None]  # (4, 3, 1, 16, 16)
    image_total, image_parts = module.reconstruction_loss(images, generator)
    torch.testing.assert_close(total, video_total + image_total)
    torch.testing.assert_close(parts["image_l1"], image_parts["l1"])
    torch.testing.assert_close(parts["l1"], video_parts["l1"])
    assert "image_l1" not in VAEModule(tiny_vae()).loss(video)[1]


def test_config_files(tmp_path):
    path = tmp_path / "configs" / "sync.toml"
    path.parent.mkdir()
    path.write_text('stage = "sync"\ndata_root = "../data"\noutput_dir = "../runs/sync"\ncomponents = "../c"\n'
                    'base_model = "../runs/base/export"\nnum_frames = 17\nheight = 128\nwidth = 128\n'
                    '[transformer]\nnum_layers = 4\n')
    loaded = load_config(path)
    assert loaded.data_root == str((tmp_path / "data").resolve())
    assert loaded.transformer.num_layers == 4 and loaded.num_views == 2 and loaded.learning_rate == 1e-4
    path.write_text('stage = "sync"\ndata_root = "d"\noutput_dir = "o"\nlerning_rate = 1\n')
    with pytest.raises(ValueError, match="unknown keys.*lerning_rate"):
        load_config(path)
    with pytest.raises(ValueError, match="4k\\+1"):
        config(tmp_path, num_frames=6)
    with pytest.raises(ValueError, match="base_model"):
        config(tmp_path, stage="sync")
    with pytest.raises(ValueError, match="cache_batch_size"):
        config(tmp_path, cache_batch_size=0)
    with pytest.raises(ValueError, match="image_frames"):
        config(tmp_path, vae={"clip_frames": 5, "image_frames": 6})


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs").glob("*/*.toml")), ids=lambda p: p.name)
def test_repository_configs_load(path):
    loaded = load_config(path)
    assert loaded.stage in ("text", "vae", "base", "sync") and Path(loaded.output_dir).is_absolute()


def test_compiled_training_matches_eager_and_exports_the_same_names(tmp_path):
    losses, names = {}, {}
    for compiled in (False, True):
        run = config(tmp_path / str(compiled), max_steps=3, compile=compiled, gradient_checkpointing=False)
        transformer = _fit_transformer(run, tiny_wan(), RandomLatents(1), None, restart=False, progress_bar=False)
        losses[compiled] = read_losses(run.run_dir)
        names[compiled] = sorted(transformer.state_dict())
        assert (transformer._compiled_call_impl is not None) == compiled
        checkpoint = torch.load(run.run_dir / CHECKPOINT_DIR / "last.ckpt", weights_only=True)
        assert not any("_orig_mod" in key for key in checkpoint["state_dict"])
    assert names[True] == names[False]
    assert sorted(losses[True]) == [1, 2, 3]
    for step in (1, 2, 3):
        assert losses[True][step] == pytest.approx(losses[False][step], rel=1e-4), step


def test_compile_without_a_cpp_compiler_is_refused_before_training(tmp_path, monkeypatch):
    import torch._inductor.config as inductor_config
    from torch._inductor.cpp_builder import cpp_compiler_search

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-compiler++",))
    cpp_compiler_search.cache_clear()
    run = config(tmp_path, compile=True)
    try:
        with pytest.raises(ValueError, match="C\\+\\+ compiler.*compile = false"):
            _fit_transformer(run, tiny_wan(), RandomLatents(1), None, restart=False, progress_bar=False)
    finally:
        cpp_compiler_search.cache_clear()
    assert not run.run_dir.exists()  # nothing started


def test_progress_bar_counts_steps_from_the_restored_one(tmp_path, capfd):
    fit(config(tmp_path, max_steps=3), FlowMatchingModule(tiny_wan(), learning_rate=1e-3), RandomLatents(1))
    capfd.readouterr()
    fit(config(tmp_path, max_steps=6), FlowMatchingModule(tiny_wan(), learning_rate=1e-3), RandomLatents(1))
    states = [line.strip() for line in capfd.readouterr().err.replace("\r", "\n").splitlines()
              if line.strip().startswith("train base")]
    assert states[0].startswith("train base:  50%") and "3/6 [" in states[0]
    assert "6/6 [" in states[-1] and "loss=" in states[-1]
