import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from syncammaster import SynCamMasterTransformer3DModel
from syncammaster.cli import main
from syncammaster.scene import Scene

from reference_syncammaster import RefConfig, random_official_state_dict
from tiny import CAPTIONS, tiny_pipeline

SUBCOMMANDS = ["generate", "cameras", "convert", "render", "sample-list", "cache", "evaluate", "train", "export", "ui"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    tiny_pipeline().save_pretrained(folder)
    return folder


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_console_script_help_lists_every_subcommand():
    exe = shutil.which("syncammaster")
    command = [exe] if exe else [sys.executable, "-m", "syncammaster.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True)
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: syncammaster " + name in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["generate", "--prompt", "x", "--out", "o", "--height", "33"], "not a multiple of 16; try 32 or 48"),
        (["generate", "--prompt", "x", "--out", "o", "--frames", "10"], "not of the form 4k+1; try 9 or 13"),
        (["generate", "--prompt", "x", "--out", "o", "--views", "0"], "must be >= 1"),
        (["generate", "--out", "o"], "--prompt"),
        (["cameras", "--views", "two"], "expected a whole number"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_failures_are_one_line(tmp_path, capsys):
    code, _, err = run(["cameras", "--rig", "nonexistent_preset"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "arc" in err
    code, _, err = run(["generate", "--prompt", "x", "--out", str(tmp_path / "o"), "--model", str(tmp_path)], capsys)
    assert code == 1 and "model_index.json" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["convert", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "c")], capsys)
    assert code == 1 and "not found" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


def test_generate_end_to_end(model_dir, tmp_path, capsys):
    out = tmp_path / "scene"
    argv = [
        "generate",
        "--prompt",
        CAPTIONS[0],
        "--rig",
        "orbit",
        "--views",
        "3",
        "--frames",
        "9",
        "--height",
        "32",
        "--width",
        "48",
        "--steps",
        "2",
        "--seed",
        "4",
        "--out",
        str(out),
        "--model",
        str(model_dir),
    ]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    for name in [
        "videos/cam01.mp4",
        "videos/cam02.mp4",
        "videos/cam03.mp4",
        "cameras/camera_extrinsics.json",
        "cameras/intrinsics.json",
        "prompt.txt",
        "grid.mp4",
        "rig.png",
    ]:
        assert (out / name).is_file(), name
    scene = Scene.read(out)
    assert len(scene.videos) == 3 and all(v.shape == (9, 32, 48, 3) for v in scene.videos)
    assert scene.prompt == CAPTIONS[0]
    intrinsics = json.loads((out / "cameras/intrinsics.json").read_text())
    assert intrinsics == pytest.approx({"width": 48, "height": 32, "fx": 43.2, "fy": 43.2, "cx": 24.0, "cy": 16.0})
    np.testing.assert_allclose(scene.rig.c2w, __import__("syncammaster").CameraRig.preset("orbit", 3).c2w, atol=1e-12)

    # Same seed, same videos; another seed, other videos. The CPU thread pool may change float rounding in
    # the last bit, which can flip a pixel's 8-bit value and then the H.264 encoding around it, so "same"
    # is a mean difference under one 8-bit level (another seed differs by about 18 levels here).
    def mean_level_difference(folder):
        ours = np.stack(scene.videos).astype(np.float64)
        return float(np.abs(np.stack(Scene.read(folder).videos) - ours).mean())

    # "again" also decodes the views one at a time (--vae-slicing) instead of together: the same videos.
    for seed, other, extra in [("4", "again", ["--vae-slicing"]), ("5", "other", [])]:
        reseeded = [*argv[:-5], seed, "--out", str(tmp_path / other), "--model", str(model_dir), *extra]
        code, _, _ = run(reseeded, capsys)
        assert code == 0
    assert mean_level_difference(tmp_path / "again") < 1.0
    assert mean_level_difference(tmp_path / "other") > 5.0

    # The existing scene is never overwritten.
    before = (out / "grid.mp4").read_bytes()
    code, _, err = run(argv, capsys)
    assert code == 1 and "already exists" in err and (out / "grid.mp4").read_bytes() == before


def test_generate_without_shipped_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("syncammaster.app.default_model_dir", lambda: tmp_path / "none")
    code, _, err = run(["generate", "--prompt", "x", "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "--model" in err and len(err.strip().splitlines()) == 1


def test_cameras_list_plot_export(tmp_path, capsys):
    code, out, _ = run(["cameras"], capsys)
    assert code == 0 and all(name in out for name in ("az", "el", "dis", "arc", "orbit", "dolly", "elevation"))
    png, exported = tmp_path / "rig.png", tmp_path / "rig.json"
    code, out, err = run(["cameras", "--rig", "az", "--plot", str(png), "--export", str(exported)], capsys)
    assert code == 0, err
    assert png.stat().st_size > 1000
    data = json.loads(exported.read_text())
    assert list(data) == ["frame0"] and len(data["frame0"]) == 2
    code, _, err = run(["cameras", "--rig", str(exported), "--plot", str(png)], capsys)
    assert code == 1 and "already exists" in err


def test_convert(tmp_path, capsys):
    cfg = RefConfig()
    torch.save(random_official_state_dict(cfg), tmp_path / "step20000.ckpt")
    out = tmp_path / "converted"
    code, _, err = run(
        ["convert", str(tmp_path / "step20000.ckpt"), "--out", str(out), "--heads", "2", "--dtype", "fp32"], capsys
    )
    assert code == 0, err
    model = SynCamMasterTransformer3DModel.from_pretrained(out)
    assert model.config.num_layers == cfg.num_layers and model.config.num_attention_heads == 2
    code, _, err = run(["convert", str(tmp_path / "step20000.ckpt"), "--out", str(out), "--heads", "2"], capsys)
    assert code == 1 and "not empty" in err


def test_help_needs_neither_torch_nor_diffusers():
    code = (
        "import sys\n"
        "from syncammaster.cli import build_parser\n"
        "build_parser(['--help']).format_help()\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
