"""Broken model folders, checkpoints and training configs end in one line naming the problem and the fix."""

import json
import shutil
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from syncammaster.cli import main
from syncammaster.model_files import (
    RELEASE_NUM_FRAMES,
    ModelFilesError,
    check_model_folder,
    check_wan_folder,
    video_defaults,
)

from reference_syncammaster import RefConfig, random_official_state_dict
from tiny import tiny_pipeline

TRANSFORMER_WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    tiny_pipeline().save_pretrained(folder)
    return folder


def _edit_index(folder, **changes):
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _wrong_shape(path):
    tensors = load_file(path)
    name = next(iter(tensors))
    tensors[name] = torch.zeros(3, 3)
    save_file(tensors, path)


BROKEN_MODELS = {  # name: (how the copy of a good folder is broken, words the message must hold)
    "index not JSON": (lambda f: (f / "model_index.json").write_text("{not json"), "index.json is not valid JSON"),
    "index empty": (lambda f: (f / "model_index.json").write_text(""), "model_index.json is not valid JSON"),
    "index a list": (lambda f: (f / "model_index.json").write_text("[1, 2]"), "not an object"),
    "no index": (lambda f: (f / "model_index.json").unlink(), "no model_index.json"),
    "no tokenizer": (lambda f: shutil.rmtree(f / "tokenizer"), "lacks its tokenizer/ folder"),
    "no text encoder": (lambda f: shutil.rmtree(f / "text_encoder"), "lacks its text_encoder/ folder"),
    "no transformer": (lambda f: shutil.rmtree(f / "transformer"), "lacks its transformer/ folder"),
    "no vae": (lambda f: shutil.rmtree(f / "vae"), "lacks its vae/ folder"),
    "no scheduler": (lambda f: shutil.rmtree(f / "scheduler"), "lacks its scheduler/ folder"),
    "no vocabulary": (lambda f: (f / "tokenizer" / "tokenizer.json").unlink(), "lacks its vocabulary"),
    "config not JSON": (lambda f: (f / "transformer" / "config.json").write_text("{oops"), "config.json is not valid"),
    "no config": (lambda f: (f / "vae" / "config.json").unlink(), "lacks config.json"),
    "no weights": (lambda f: (f / TRANSFORMER_WEIGHTS).unlink(), "has no weights"),
    "transformer cut short": (lambda f: _cut_in_half(f / TRANSFORMER_WEIGHTS), "cut short"),
    "vae cut short": (lambda f: _cut_in_half(f / "vae/diffusion_pytorch_model.safetensors"), "cut short"),
    "text encoder cut short": (lambda f: _cut_in_half(f / "text_encoder/model.safetensors"), "cut short"),
    "weights garbage": (lambda f: (f / TRANSFORMER_WEIGHTS).write_bytes(b"not weights at all"), "cut short"),
    "weights empty": (lambda f: (f / TRANSFORMER_WEIGHTS).write_bytes(b""), "is empty"),
    "weights of another shape": (lambda f: _wrong_shape(f / TRANSFORMER_WEIGHTS), "cannot load the model"),
    "another pipeline": (lambda f: _edit_index(f, _class_name="StableDiffusionPipeline"), "holds a StableDiffusion"),
    "a Wan folder": (lambda f: _edit_index(f, _class_name="WanPipeline"), "--wan"),
    "a plain Wan transformer": (
        lambda f: _edit_index(f, transformer=["diffusers", "WanTransformer3DModel"]), "WanTransformer3DModel"
    ),
    "mixed components": (
        lambda f: (f / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"})), "mixes"
    ),
}


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _assert_one_line_failure(code, err, needle):
    assert code == 1, err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert len(err) < 400, err


def _generate(model_flags, out):
    return ["generate", "--prompt", "a red sphere", "--frames", "5", "--height", "32", "--width", "32", "--steps",
            "1", "--out", str(out), "--quiet", *model_flags]


@pytest.mark.parametrize("name", list(BROKEN_MODELS))
def test_generate_refuses_a_broken_model_folder_in_one_line(name, model_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    breaking, needle = BROKEN_MODELS[name]
    breaking(folder)
    code, err = _run(_generate(["--model", str(folder)], tmp_path / "out"), capsys)
    _assert_one_line_failure(code, err, needle)
    assert not (tmp_path / "out").exists()


def test_model_folder_checks_pass_a_good_folder_and_name_other_kinds_of_path(model_dir, tmp_path):
    assert check_model_folder(model_dir) == model_dir
    with pytest.raises(ModelFilesError, match="does not exist"):
        check_model_folder(tmp_path / "absent")
    with pytest.raises(ModelFilesError, match="is a file.*--checkpoint"):
        check_model_folder(model_dir / TRANSFORMER_WEIGHTS)
    with pytest.raises(ModelFilesError, match="transformer alone"):
        check_model_folder(model_dir / "transformer")


@pytest.fixture
def wan_dir(model_dir, tmp_path):
    """A folder laid out as a Wan2.1 diffusers folder (tokenizer/, text_encoder/, vae/, transformer/), no index."""
    folder = tmp_path / "wan"
    shutil.copytree(model_dir, folder)
    (folder / "model_index.json").unlink()
    return folder


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "step20000.ckpt"
    torch.save(random_official_state_dict(RefConfig()), path)
    return path


def test_wan_folder_checks(wan_dir, model_dir):
    assert check_wan_folder(wan_dir, with_transformer=True) == wan_dir
    with pytest.raises(ModelFilesError, match="SynCamMaster model folder.*--model"):
        check_wan_folder(model_dir)
    shutil.rmtree(wan_dir / "transformer")
    check_wan_folder(wan_dir)  # a checkpoint brings the transformer
    with pytest.raises(ModelFilesError, match="no transformer/"):
        check_wan_folder(wan_dir, with_transformer=True)


@pytest.mark.parametrize(
    "breaking,needle",
    [
        (lambda f: shutil.rmtree(f / "text_encoder"), "no text_encoder/"),
        (lambda f: _cut_in_half(f / "vae/diffusion_pytorch_model.safetensors"), "cut short"),
        (lambda f: (f / "tokenizer" / "tokenizer_config.json").write_text("{"), "not valid JSON"),
        (lambda f: (f / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"})), "FluxPipeline"),
    ],
    ids=["no text encoder", "vae cut short", "tokenizer config not JSON", "another pipeline"],
)
def test_generate_refuses_a_broken_wan_folder_in_one_line(breaking, needle, wan_dir, checkpoint, tmp_path, capsys):
    breaking(wan_dir)
    code, err = _run(_generate(["--wan", str(wan_dir), "--checkpoint", str(checkpoint)], tmp_path / "out"), capsys)
    _assert_one_line_failure(code, err, needle)
    assert not (tmp_path / "out").exists()


def _cut_zip(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    assert not zipfile.is_zipfile(path)


BAD_CHECKPOINTS = {  # name: (writes the bad checkpoint at a path, words the message must hold)
    "text": (lambda p: p.write_text("hello"), "not a weights file"),
    "random bytes": (lambda p: p.write_bytes(bytes(range(256)) * 8), "not a weights file"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "cut short": (lambda p: (torch.save(random_official_state_dict(RefConfig()), p), _cut_zip(p)), "cut short"),
    "a list": (lambda p: torch.save([1, 2, 3], p), "holds a list"),
    "other tensors": (lambda p: torch.save({"weight": torch.zeros(2)}, p), "not a Wan2.1/SynCamMaster DiT"),
    "a folder": (lambda p: p.mkdir(), "is a folder"),
    "absent": (lambda p: None, "not found"),
}


@pytest.mark.parametrize("name", list(BAD_CHECKPOINTS))
def test_convert_and_generate_refuse_a_bad_checkpoint_in_one_line(name, wan_dir, tmp_path, capsys):
    path = tmp_path / "step20000.ckpt"
    writing, needle = BAD_CHECKPOINTS[name]
    writing(path)
    code, err = _run(["convert", str(path), "--out", str(tmp_path / "converted"), "--heads", "2"], capsys)
    _assert_one_line_failure(code, err, needle)
    code, err = _run(_generate(["--wan", str(wan_dir), "--checkpoint", str(path)], tmp_path / "out"), capsys)
    _assert_one_line_failure(code, err, needle)
    assert not (tmp_path / "converted").exists() and not (tmp_path / "out").exists()


def test_a_model_folder_given_as_checkpoint_is_named(model_dir, tmp_path, capsys):
    code, err = _run(["convert", str(model_dir), "--out", str(tmp_path / "converted")], capsys)
    _assert_one_line_failure(code, err, "is a model folder")


BAD_CONFIGS = {  # name: (writes the config at a path, words the message must hold)
    "a folder": (lambda p: p.mkdir(), "is a folder"),
    "binary": (lambda p: p.write_bytes(bytes(range(256))), "not a text file"),
    "weights": (lambda p: save_file({"w": torch.zeros(4)}, p), "not a text file"),
    "JSON": (lambda p: p.write_text('{"stage": "base"}'), "not valid TOML"),
    "empty": (lambda p: p.write_text(""), "required keys stage, data_root, output_dir"),
    "a section as a number": (lambda p: p.write_text('stage = "vae"\ndata_root = "d"\noutput_dir = "o"\nvae = 1\n'),
                              "[vae] table"),
    "a number as text": (lambda p: p.write_text('stage = "vae"\ndata_root = "d"\noutput_dir = "o"\nmax_steps = "x"\n'),
                         "max_steps = 'x' is not a whole number"),
    "a path as a list": (lambda p: p.write_text('stage = "vae"\ndata_root = ["d"]\noutput_dir = "o"\n'),
                         "data_root = ['d'] is not a string"),
    "a nested value": (lambda p: p.write_text('stage = "vae"\ndata_root = "d"\noutput_dir = "o"\n[vae]\nz_dim = 1.5\n'),
                       "[vae] z_dim = 1.5 is not a whole number"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_train_refuses_a_bad_config_in_one_line(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "stage.toml"
    writing, needle = BAD_CONFIGS[name]
    writing(path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _run(["train", "--config", str(path)], capsys)
    _assert_one_line_failure(code, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_video_defaults_come_from_the_model_index_before_loading(model_dir, tmp_path):
    released = {"num_frames": RELEASE_NUM_FRAMES, "height": 480, "width": 832, "fps": 15.0}
    assert video_defaults(None) == released
    assert video_defaults(model_dir) == released  # the tiny pipeline keeps the release's defaults
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    _edit_index(copy, default_fps=24.0, default_num_frames=17, default_height=64)
    assert video_defaults(copy) == {"num_frames": 17, "height": 64, "width": 832, "fps": 24.0}
    index = json.loads((copy / "model_index.json").read_text())
    del index["default_fps"]  # a folder saved before the key existed: SynCamVideo's rate
    (copy / "model_index.json").write_text(json.dumps(index))
    assert video_defaults(copy)["fps"] == 15.0
    _edit_index(copy, default_fps="fast")
    with pytest.raises(ModelFilesError, match="default_fps='fast', not a positive number"):
        video_defaults(copy)
