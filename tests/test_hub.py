"""Hugging Face repo ids wherever a model is named, and ``syncammaster download``, all offline: each test lays out
huggingface_hub's cache in a temporary folder (``TYPE--OWNER--NAME/{blobs, refs/REVISION, snapshots/COMMIT}``) and
sets ``HF_HUB_OFFLINE=1``."""

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch

from syncammaster import SynCamMasterPipeline, SynCamMasterTransformer3DModel
from syncammaster.cli import main
from syncammaster.hub import HubError, resolve_file, resolve_folder, split_repo_name
from syncammaster.model_files import check_wan_folder
from syncammaster.models.transformer_syncammaster import to_official_state_dict
from syncammaster.scene import Scene

from tiny import CAPTIONS, tiny_pipeline

COMMIT = "1" * 40
OTHER_COMMIT = "2" * 40
WAN_ID, CHECKPOINT_ID, MODEL_ID, DATASET_ID = "tiny-org/Wan-tiny-Diffusers", "tiny-org/SynCam-tiny", \
    "tiny-org/SynCam-tiny-model", "tiny-org/SynCamVideo-tiny"
SIZE = {"height": 32, "width": 48, "num_frames": 9}
GENERATE = ["generate", "--prompt", CAPTIONS[0], "--rig", "arc", "--views", "2", "--frames", "9", "--height", "32",
            "--width", "48", "--steps", "2", "--seed", "3", "--dtype", "fp32", "--quiet"]


# ---------------------------------------------------------------------------------------------------------------
# A hub cache in a temporary folder
# ---------------------------------------------------------------------------------------------------------------


def cache_repo(cache: Path, repo_id: str, source: Path, repo_type: str = "model", revision: str = "main",
               commit: str = COMMIT) -> Path:
    """Puts the files under ``source`` (a folder, or one file) into ``cache`` as huggingface_hub stores a download:
    each file's bytes in blobs/, a link to it in snapshots/COMMIT/, and refs/REVISION naming COMMIT."""
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        entry = snapshot / (path.name if source.is_file() else path.relative_to(source))
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.unlink(missing_ok=True)
        entry.symlink_to(os.path.relpath(blob, entry.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty offline hub cache. huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE once, when imported: the
    loaded library gets the same values as the environment (which a new process would read)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The local copies: a tiny Wan2.1 folder, a released-format checkpoint of the same transformer, a SynCamMaster
    model folder, and a checkpoint of other weights."""
    root = tmp_path_factory.mktemp("local")
    pipe = tiny_pipeline()
    wan = root / "Wan-tiny-Diffusers"
    for name in ("tokenizer", "text_encoder", "vae", "scheduler"):
        getattr(pipe, name).save_pretrained(wan / name)
    pipe.transformer.save_pretrained(wan / "transformer")  # its config names the head count
    torch.save(to_official_state_dict(pipe.transformer), root / "step20000.ckpt")
    pipe.save_pretrained(root / "model")
    torch.save(to_official_state_dict(tiny_pipeline(seed=1).transformer), root / "other.ckpt")
    return {"wan": wan, "checkpoint": root / "step20000.ckpt", "model": root / "model", "other": root / "other.ckpt"}


@pytest.fixture
def cached(hub_cache, local):
    """The local copies as three repos in the hub cache; the checkpoint repo's v1 tag holds the other weights."""
    cache_repo(hub_cache, WAN_ID, local["wan"])
    cache_repo(hub_cache, CHECKPOINT_ID, local["checkpoint"])
    cache_repo(hub_cache, CHECKPOINT_ID, local["other"], revision="v1", commit=OTHER_COMMIT)
    os.replace(hub_cache / f"models--{CHECKPOINT_ID.replace('/', '--')}/snapshots/{OTHER_COMMIT}/other.ckpt",
               hub_cache / f"models--{CHECKPOINT_ID.replace('/', '--')}/snapshots/{OTHER_COMMIT}/step20000.ckpt")
    cache_repo(hub_cache, MODEL_ID, local["model"])
    return hub_cache


def _latents(pipe, seed=5):
    pipe.set_progress_bar_config(disable=True)
    rig = __import__("syncammaster").CameraRig.preset("arc", num_views=2)
    return pipe(CAPTIONS[0], rig, num_inference_steps=2, seed=seed, output_type="latent", **SIZE)[0]


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line(code, err, *needles):
    """A failure: exit code 1 and one line on stderr (besides progress bars, which end in "|" bars and "\r")."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# ---------------------------------------------------------------------------------------------------------------
# Which names are repo ids
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,with_file,expected", [
    ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", False, ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", None)),
    ("KwaiVGI/SynCamMaster-Wan2.1", True, ("KwaiVGI/SynCamMaster-Wan2.1", None)),
    ("KwaiVGI/SynCamMaster-Wan2.1/sub/step.ckpt", True, ("KwaiVGI/SynCamMaster-Wan2.1", "sub/step.ckpt")),
    ("a/b/c", False, None),  # a folder is OWNER/REPO
    ("model", False, None),  # no owner
    ("./a/b", True, None),
    ("/abs/a", True, None),
    ("~/a", True, None),
    ("a--b/c", False, None),  # not a valid repo id
    ("a/b/../c", True, None),
    ("existing/thing", False, None),  # the first part is a local folder: a mistyped path, not a repo
])
def test_repo_names(name, with_file, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    assert split_repo_name(name, with_file=with_file) == expected
    assert split_repo_name(Path("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")) is None  # a Path is always a path


def test_a_local_path_wins_over_the_repo_of_the_same_name(cached, local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_folder(MODEL_ID).parent.name == "snapshots"
    shutil.copytree(local["model"], tmp_path / MODEL_ID)
    assert resolve_folder(MODEL_ID) == Path(MODEL_ID)
    # A folder named as the owner makes other names under it local paths too (mistyped, not repo ids).
    assert resolve_folder(WAN_ID) == Path(WAN_ID)
    assert resolve_folder("not a repo id") == Path("not a repo id")  # the caller's check says it does not exist


# ---------------------------------------------------------------------------------------------------------------
# Repo ids give the same videos as the folders
# ---------------------------------------------------------------------------------------------------------------


def test_api_repo_ids_load_what_the_folders_hold(cached, local):
    from_folders = _latents(SynCamMasterPipeline.from_wan(local["wan"], local["checkpoint"], torch_dtype=torch.float32))
    from_ids = _latents(SynCamMasterPipeline.from_wan(WAN_ID, CHECKPOINT_ID, torch_dtype=torch.float32))
    torch.testing.assert_close(from_ids, from_folders, rtol=0, atol=1e-5)
    from_model_id = _latents(SynCamMasterPipeline.from_pretrained(MODEL_ID))
    torch.testing.assert_close(from_model_id, _latents(SynCamMasterPipeline.from_pretrained(local["model"])),
                               rtol=0, atol=1e-5)

    # OWNER/REPO/FILE, and a revision: the v1 tag holds other weights.
    load = SynCamMasterTransformer3DModel.from_official_checkpoint
    main_state = load(f"{CHECKPOINT_ID}/step20000.ckpt", num_attention_heads=2).state_dict()
    v1_state = load(CHECKPOINT_ID, revision="v1", num_attention_heads=2).state_dict()
    expected = load(local["other"], num_attention_heads=2).state_dict()
    name = "blocks.0.mvs_attn.to_q.weight"
    torch.testing.assert_close(v1_state[name], expected[name])
    assert not torch.equal(main_state[name], v1_state[name])


def test_cli_repo_ids_give_the_same_videos_as_the_folders(cached, local, tmp_path, capsys):
    runs = {
        "folders": ["--wan", str(local["wan"]), "--checkpoint", str(local["checkpoint"])],
        "ids": ["--wan", WAN_ID, "--checkpoint", f"{CHECKPOINT_ID}/step20000.ckpt"],
        "model folder": ["--model", str(local["model"])],
        "model id": ["--model", MODEL_ID, "--revision", "main"],
    }
    videos = {}
    for name, flags in runs.items():
        out = tmp_path / name
        code, _, err = _run([*GENERATE, *flags, "--out", str(out)], capsys)
        assert code == 0, err
        videos[name] = np.stack(Scene.read(out).videos).astype(np.float64)  # (V, T, H, W, 3)
    # The same models in the same process: the same frames, up to H.264 re-encoding of a last-bit change.
    assert np.abs(videos["ids"] - videos["folders"]).mean() < 1.0
    assert np.abs(videos["model id"] - videos["model folder"]).mean() < 1.0

    code, _, err = _run(["convert", CHECKPOINT_ID, "--revision", "v1", "--out", str(tmp_path / "converted"),
                         "--heads", "2", "--dtype", "fp32"], capsys)
    assert code == 0, err
    converted = SynCamMasterTransformer3DModel.from_pretrained(tmp_path / "converted").state_dict()
    expected = SynCamMasterTransformer3DModel.from_official_checkpoint(local["other"], num_attention_heads=2)
    name = "blocks.1.projector.weight"
    torch.testing.assert_close(converted[name], expected.state_dict()[name])


def test_the_web_app_loads_a_repo_id(cached):
    """``syncammaster ui`` takes the same model flags and loader as ``generate``."""
    from syncammaster.app import load_pipeline
    from syncammaster.cli import build_parser

    args = build_parser(["ui"]).parse_args(["ui", "--model", MODEL_ID, "--revision", "main", "--dtype", "fp32"])
    assert isinstance(load_pipeline(args), SynCamMasterPipeline)


LOCAL = "pass its local path"


def test_cache_command_takes_a_repo_id(cached, local, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(Path(__file__).parent / "data")
    from tiny_scenes import make_dataset

    data = make_dataset(tmp_path / "data")
    settings = ["--frames", "9", "--height", "32", "--width", "32", "--max-sequence-length", "16", "--device", "cpu"]
    code, out, err = _run(["cache", str(data), "--model", WAN_ID, "--out", str(tmp_path / "cache"), *settings], capsys)
    assert code == 0, err
    assert "encoded 15 of 15 items" in out
    # The folder holds the same encoders: the cache they made is complete for it.
    code, out, err = _run(["cache", str(data), "--model", str(local["wan"]), "--out", str(tmp_path / "cache"),
                           *settings], capsys)
    assert code == 0, err
    assert "encoded 0 of 15 items (15 were already cached)" in out


@pytest.mark.parametrize("flags,needles", [
    (["--wan", "tiny-org/absent", "--checkpoint", CHECKPOINT_ID], ["tiny-org/absent", "HF_HUB_OFFLINE", LOCAL]),
    (["--wan", WAN_ID, "--checkpoint", "tiny-org/absent-ckpt"], ["tiny-org/absent-ckpt/step20000.ckpt", LOCAL]),
    (["--wan", WAN_ID, "--checkpoint", f"{CHECKPOINT_ID}/nothing.ckpt"], [f"{CHECKPOINT_ID}/nothing.ckpt", LOCAL]),
    (["--model", "tiny-org/absent"], ["tiny-org/absent is not a local path", LOCAL]),
    (["--model", MODEL_ID, "--revision", "v9"], [MODEL_ID, "not in the Hugging Face cache", LOCAL]),
    (["--model", "no such folder"], ["model folder no such folder does not exist"]),
], ids=["wan", "checkpoint repo", "checkpoint file", "model", "revision", "not a repo id"])
def test_a_repo_not_in_the_cache_is_one_line(flags, needles, cached, tmp_path, capsys):
    code, _, err = _run([*GENERATE, *flags, "--out", str(tmp_path / "out")], capsys)
    _assert_one_line(code, err, *needles)
    assert not (tmp_path / "out").exists()


def test_resolve_errors_name_the_repo(cached, caplog):
    with pytest.raises(HubError, match="tiny-org/none/x.ckpt is not a local path, and it is not in the Hugging Face"):
        resolve_file("tiny-org/none/x.ckpt")
    # Without a network huggingface_hub retries each request and warns each time; the one line above says it all.
    http_logger = logging.getLogger("huggingface_hub.utils._http")
    http_logger.warning("'[Errno -2] Name or service not known' thrown while requesting HEAD https://huggingface.co/x")
    http_logger.warning("Retrying in 1s [Retry 1/5].")
    http_logger.warning("another warning")
    assert [record.getMessage() for record in caplog.records] == ["another warning"]


# ---------------------------------------------------------------------------------------------------------------
# syncammaster download
# ---------------------------------------------------------------------------------------------------------------


def test_download_models(cached, local, tmp_path, capsys):
    code, out, err = _run(["download", "wan", "--repo", WAN_ID], capsys)
    assert code == 0, err
    assert f"--wan {WAN_ID} --checkpoint" in out  # no --out: the repo id, resolved from the cache

    wan_out = tmp_path / "models" / "wan"
    code, out, err = _run(["download", "wan", "--repo", WAN_ID, "--out", str(wan_out)], capsys)
    assert code == 0, err
    assert f"--wan {wan_out} " in out
    check_wan_folder(wan_out, with_transformer=True)
    for path in local["wan"].rglob("*"):
        if path.is_file():
            assert (wan_out / path.relative_to(local["wan"])).read_bytes() == path.read_bytes()
    code, _, err = _run(["download", "wan", "--repo", WAN_ID, "--out", str(wan_out)], capsys)
    _assert_one_line(code, err, "already exists")

    code, out, err = _run(["download", "checkpoint", "--repo", CHECKPOINT_ID, "--revision", "v1",
                           "--out", str(tmp_path / "models" / "SynCamMaster")], capsys)
    assert code == 0, err
    placed = tmp_path / "models" / "SynCamMaster" / "step20000.ckpt"
    assert placed.read_bytes() == local["other"].read_bytes() and f"--checkpoint {placed} " in out
    assert sorted(p.name for p in placed.parent.iterdir()) == ["step20000.ckpt"]  # no temporary file left


@pytest.mark.parametrize("argv,needles", [
    (["download", "wan", "--repo", "tiny-org/absent", "--out", "OUT"], ["tiny-org/absent", "--wan DIR"]),
    (["download", "checkpoint", "--repo", "tiny-org/absent"], ["tiny-org/absent/step20000.ckpt", "--checkpoint"]),
    (["download", "dataset", "--repo", "tiny-org/absent", "--out", "OUT"], ["tiny-org/absent", "tar -xzf"]),
    (["download", "wan", "--repo", "not a repo"], ["not a Hugging Face repo id"]),
], ids=["wan", "checkpoint", "dataset", "bad id"])
def test_download_failures_are_one_line(argv, needles, hub_cache, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code, _, err = _run(argv, capsys)
    _assert_one_line(code, err, *needles)
    assert not (tmp_path / "out").exists()


def _tar_gz(path: Path, members: dict[str, bytes | None], links: dict[str, str] | None = None) -> Path:
    """A gzipped tar of files (bytes) and folders (None), plus symbolic links name -> target."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


DATASET_FILES = {
    "SynCamVideo-Dataset/": None,
    "SynCamVideo-Dataset/train/f24_aperture5/scene1/cameras/camera_extrinsics.json": json.dumps({}).encode(),
    "SynCamVideo-Dataset/train/f24_aperture5/scene1/videos/cam01.mp4": b"video bytes",
    "SynCamVideo-Dataset/val/basic/cameras/camera_extrinsics.json": b"{}",
}


def test_download_dataset_unpacks_the_archive(hub_cache, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    archive = _tar_gz(tmp_path / "SynCamVideo-Dataset.tar.gz", DATASET_FILES)
    snapshot = cache_repo(hub_cache, DATASET_ID, archive, repo_type="dataset")
    code, out, err = _run(["download", "dataset", "--repo", DATASET_ID, "--keep-archive"], capsys)
    assert code == 0, err
    root = tmp_path / "data" / "SynCamVideo-Dataset"  # the default --out; the archive's top folder is the root
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]
    for name, data in DATASET_FILES.items():
        if data is not None:
            assert (root / name.split("/", 1)[1]).read_bytes() == data
    assert "data_root" in out and "metadata.csv" in out  # the next step, and that it lacks captions
    assert (snapshot / archive.name).is_file()  # --keep-archive
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["SynCamVideo-Dataset"]  # no staging folder left

    code, _, err = _run(["download", "dataset", "--repo", DATASET_ID, "--out", str(tmp_path / "again")], capsys)
    assert code == 0, err
    assert (tmp_path / "again" / "val" / "basic" / "cameras" / "camera_extrinsics.json").is_file()
    assert not snapshot.exists()  # the archive left the cache once unpacked


@pytest.mark.parametrize("archive,needle", [
    ({"members": {"../evil.txt": b"x"}}, "a path outside the folder"),
    ({"members": {"/etc/evil": b"x"}}, "a path outside the folder"),
    ({"members": {"d/": None}, "links": {"d/link": "/etc/passwd"}}, "a link or special file"),
    ({"cut": True}, "damaged or cut short"),
    ({"members": {}, "not_gzip": True}, "damaged or cut short"),
], ids=["dot-dot", "absolute", "symlink", "cut short", "not gzip"])
def test_download_dataset_refuses_bad_archives(archive, needle, hub_cache, tmp_path, capsys):
    path = tmp_path / "SynCamVideo-Dataset.tar.gz"
    if archive.get("not_gzip"):
        path.write_bytes(b"plain text, not an archive")
    else:
        _tar_gz(path, archive.get("members", DATASET_FILES), archive.get("links"))
    if archive.get("cut"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cache_repo(hub_cache, DATASET_ID, path, repo_type="dataset")
    out = tmp_path / "out" / "dataset"
    code, _, err = _run(["download", "dataset", "--repo", DATASET_ID, "--out", str(out)], capsys)
    _assert_one_line(code, err, needle)
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written, no staging folder left
    assert not (tmp_path / "evil.txt").exists()


def test_download_command_reads_the_hub_environment(local, tmp_path):
    """As a user runs it: a new process that only has HF_HUB_OFFLINE and HF_HUB_CACHE in its environment."""
    cache = tmp_path / "cache"
    cache_repo(cache, CHECKPOINT_ID, local["checkpoint"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    exe = shutil.which("syncammaster")
    command = [exe] if exe else [sys.executable, "-m", "syncammaster.cli"]
    result = subprocess.run([*command, "download", "checkpoint", "--repo", CHECKPOINT_ID, "--out",
                             str(tmp_path / "ckpt")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ckpt" / "step20000.ckpt").read_bytes() == local["checkpoint"].read_bytes()
    result = subprocess.run([*command, "download", "wan"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers is not in the Hugging Face cache (HF_HUB_OFFLINE is set)" in result.stderr
