"""Stage sync with ``lora_rank``: only the novel-view LoRA trains, checkpoints hold it alone, the run resumes, and the
export is the starting model unchanged plus the adapter in ``novel_view_lora/``."""

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from syncammaster import SynCamMasterPipeline
from syncammaster.lora import LORA_WEIGHT_NAME, NOVEL_VIEW_LORA_DIR
from syncammaster.render import render_dataset
from syncammaster.training import train
from syncammaster.training.config import config_from_dict
from syncammaster.training.runner import CHECKPOINT_DIR, METRICS_FILE

from tiny import tiny_pipeline

pytestmark = pytest.mark.slow  # training chains

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data root, a model folder that serves as components and base model, a latent cache filled once)."""
    root = tmp_path_factory.mktemp("lora")
    render_dataset(root / "data", num_scenes=2, num_views=4, num_frames=5, size=32, seed=7, workers=1,
                   progress=False)
    tiny_pipeline().save_pretrained(root / "model")
    return root


def sync_config(root, run, **extra):
    values = {"stage": "sync", "data_root": str(root / "data"), "output_dir": str(root / run),
              "components": str(root / "model"), "base_model": str(root / "model"), "cache_dir": str(root / "cache"),
              "num_frames": 5, "height": 32, "width": 32, "max_sequence_length": 16, "max_steps": 2, "batch_size": 1,
              "checkpoint_every": 1, "num_workers": 0, "learning_rate": 1e-2, "gradient_checkpointing": False,
              "bf16_timesteps": False, "num_views": 2, "max_azimuth": 180.0, "max_elevation": 90.0,
              "reference_view_prob": 1.0, "lora_rank": 4, "log_every": 1, **extra}
    return config_from_dict(values)


def test_lora_training_changes_only_the_adapter_exports_it_and_resumes(setup):
    export = train(sync_config(setup, "run", same_pose_prob=0.5), progress_bar=False)

    # The model folder is the starting model, byte for byte in its weights; the adapter lies beside it.
    before, after = load_file(setup / "model" / WEIGHTS), load_file(export / WEIGHTS)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    lora = load_file(export / NOVEL_VIEW_LORA_DIR / LORA_WEIGHT_NAME)
    ups = [key for key in lora if ".lora_B." in key]
    assert ups and any(lora[key].abs().sum() > 0 for key in ups)  # up matrices start at zero: they trained
    assert any(".attn1.to_v." in key for key in lora) and any(".mvs_attn.to_q." in key for key in lora)
    record = json.loads((export / "training.json").read_text())
    assert record["lora_rank"] == 4 and record["same_pose_prob"] == 0.5

    # Checkpoints hold the adapter's tensors alone.
    checkpoint = torch.load(setup / "run" / CHECKPOINT_DIR / "last.ckpt", weights_only=True)
    assert checkpoint["state_dict"] and all(".lora_" in key for key in checkpoint["state_dict"])
    assert len(checkpoint["state_dict"]) == len(lora)

    # The exported folder loads with its adapter, which a reference call uses.
    assert SynCamMasterPipeline.from_pretrained(export).has_novel_view_adapter

    # Resumed to 3 steps: it goes on from step 2 and the adapter moves on.
    train(sync_config(setup, "run", max_steps=3, same_pose_prob=0.5), progress_bar=False)
    with (setup / "run" / METRICS_FILE).open() as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1, 2, 3]
    resumed = load_file(export / NOVEL_VIEW_LORA_DIR / LORA_WEIGHT_NAME)
    assert resumed.keys() == lora.keys() and not all(torch.equal(resumed[k], lora[k]) for k in lora)

    # A module-only run does not resume from the adapter's checkpoints.
    with pytest.raises(ValueError, match="other trained parameters") as error:
        train(sync_config(setup, "run", max_steps=4, lora_rank=0), progress_bar=False)
    assert "\n" not in str(error.value)


def test_lora_settings_are_checked(setup):
    with pytest.raises(ValueError, match="lora_rank must be >= 0"):
        sync_config(setup, "bad", lora_rank=-1)
    with pytest.raises(ValueError, match="lora_rank needs stage 'sync'"):
        config_from_dict({"stage": "base", "data_root": "d", "output_dir": "o", "components": "c", "lora_rank": 4})
    with pytest.raises(ValueError, match="lora_targets must be a list of layer names"):
        sync_config(setup, "bad", lora_targets=[])
    with pytest.raises(ValueError, match="is not a list of strings"):
        sync_config(setup, "bad", lora_targets=[1, 2])
    with pytest.raises(ValueError, match=r"\['attn9.to_q'\] name no linear layer"):
        train(sync_config(setup, "bad", lora_targets=["attn1.to_q", "attn9.to_q"]), progress_bar=False)
    with pytest.raises(ValueError, match=r"same_pose_prob must be in \[0, 1\]"):
        sync_config(setup, "bad", same_pose_prob=1.5)
    with pytest.raises(ValueError, match="same_pose_prob needs reference_view_prob > 0"):
        sync_config(setup, "bad", same_pose_prob=1.0, reference_view_prob=0.0)
