"""The small model shipped inside the package: `syncammaster generate` with no model argument uses it."""

import json

import numpy as np

from syncammaster.app import default_model_dir
from syncammaster.cli import main
from syncammaster.scene import Scene

PROMPT = "A large red sphere bounces near a small blue cube, on a grey stone floor under a clear sky."


def generate(out, *extra):
    argv = ["generate", "--prompt", PROMPT, "--views", "2", "--frames", "5", "--steps", "3", "--seed", "1",
            "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0


def test_shipped_model_is_in_the_package():
    folder = default_model_dir()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "SynCamMasterPipeline"
    assert (index["default_height"], index["default_width"], index["default_num_frames"]) == (128, 128, 17)
    weights = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    assert 0 < weights <= 50 * 2**20


def test_default_generate_runs_on_the_shipped_weights(tmp_path):
    generate(tmp_path / "synced")
    generate(tmp_path / "independent", "--no-sync")
    synced, independent = Scene.read(tmp_path / "synced"), Scene.read(tmp_path / "independent")
    assert [v.shape for v in synced.videos] == [(5, 128, 128, 3)] * 2
    assert synced.intrinsics is not None and synced.intrinsics.width == 128
    assert (tmp_path / "synced" / "grid.mp4").is_file() and (tmp_path / "synced" / "rig.png").is_file()
    # The multi-view module is trained: bypassing it changes the videos.
    assert not all(np.array_equal(a, b) for a, b in zip(synced.videos, independent.videos, strict=True))
