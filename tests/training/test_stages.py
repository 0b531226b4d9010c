"""The four stages chained on a tiny rendered dataset: the exported folder loads into SynCamMasterPipeline."""

import pytest
import torch

from syncammaster import SynCamMasterPipeline
from syncammaster.render import render_dataset
from syncammaster.training import train
from syncammaster.training.config import config_from_dict

pytestmark = pytest.mark.slow  # training chains


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("render") / "data"
    render_dataset(root, num_scenes=2, num_views=4, num_frames=5, size=32, seed=7, workers=1, progress=False)
    return root


def stage_config(stage, run, data, **extra):
    values = {"stage": stage, "data_root": str(data), "output_dir": str(run / stage), "num_frames": 5,
              "height": 32, "width": 32, "max_sequence_length": 16, "max_steps": 2, "batch_size": 1,
              "checkpoint_every": 1, "num_workers": 0, "learning_rate": 1e-3, "gradient_checkpointing": False,
              "bf16_timesteps": False, **extra}
    return config_from_dict(values)


def test_text_vae_base_sync_chain(tmp_path, data, capfd):
    components = tmp_path / "components"
    common = {"cache_dir": str(tmp_path / "cache"), "cache_batch_size": 3}  # 2 captions + 8 videos: uneven batches
    train(stage_config("text", tmp_path, data, export_dir=str(components),
                       text={"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2}),
          progress_bar=False)
    train(stage_config("vae", tmp_path, data, export_dir=str(components),
                       vae={"base_dim": 4, "z_dim": 4, "dim_mult": [1, 1, 1, 1], "crop_size": 16, "clip_frames": 5}),
          progress_bar=False)
    assert {p.name for p in components.iterdir()} == {"tokenizer", "text_encoder", "vae"}
    base = train(stage_config("base", tmp_path, data, components=str(components), caption_dropout=0.5, **common,
                              transformer={"num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 1,
                                           "ffn_dim": 16, "in_channels": 4, "out_channels": 4, "text_dim": 16,
                                           "freq_dim": 16}),
                 progress_bar=False)
    export = train(stage_config("sync", tmp_path, data, components=str(components), base_model=str(base),
                                num_views=2, max_azimuth=180.0, max_elevation=90.0, **common),
                   progress_bar=False)
    bars = [word for word in ("checking videos", "caching", "train ", "%|") if word in capfd.readouterr().err]
    assert bars == []  # progress_bar=False (train --quiet) silences every bar of the stages, the data's included

    # Decoder-only fine-tuning keeps the encoder (and so every latent downstream) unchanged.
    from diffusers import AutoencoderKLWan

    final = train(stage_config("vae", tmp_path / "decoder", data, export_dir=str(tmp_path / "final"),
                               vae={"init_from": str(components / "vae"), "train_encoder": False,
                                    "crop_size": 16, "clip_frames": 5}),
                  progress_bar=False)
    before = AutoencoderKLWan.from_pretrained(components / "vae")
    after = AutoencoderKLWan.from_pretrained(final / "vae")
    assert all(torch.equal(a, b) for a, b in zip(before.encoder.parameters(), after.encoder.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(before.decoder.parameters(), after.decoder.parameters(),
                                                        strict=True))
    assert after.config.latents_mean == before.config.latents_mean

    pipe = SynCamMasterPipeline.from_pretrained(export)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.max_sequence_length == 16
    assert pipe.config.focal_length_per_side == pytest.approx(24 / 23.76)  # the renderer's camera
    from syncammaster import CameraRig

    assert (pipe.config.default_height, pipe.config.default_width, pipe.config.default_num_frames) == (32, 32, 5)
    videos = pipe("a red sphere", CameraRig.preset("arc", 2), num_inference_steps=2, seed=0).videos  # trained size
    assert videos.shape == (1, 2, 5, 32, 32, 3)
    # Re-running a finished stage resumes at max_steps and exports again without training further.
    assert train(stage_config("sync", tmp_path, data, components=str(components), base_model=str(base),
                              num_views=2, max_azimuth=180.0, max_elevation=90.0, **common),
                 progress_bar=False) == export
