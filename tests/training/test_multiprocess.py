"""Training and caching in two processes (Lightning DDP over gloo on the CPU), run as a user runs them: the
``syncammaster`` command on a tiny model folder and a few rendered scenes.

Two processes of batch 1 see the global batches one process of batch 2 sees (item for item, with the same noise
draws), so they train the same model; a run whose rank 1 is SIGKILLed resumes to the weights of an uninterrupted
run; ``syncammaster cache`` on two processes writes each item once and the cache one process writes.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import syncammaster
from syncammaster.atomic import LOCK_SUFFIX, STAGING_MARK
from syncammaster.render import render_dataset
from syncammaster.training.runner import CHECKPOINT_DIR, METRICS_FILE

from tiny import tiny_pipeline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds rank 1's process through /proc (Linux)"),
]

STEPS = 12  # enough that a kill after the first checkpoint lands well before the end
CHECKPOINT_EVERY = 2
TRANSFORMER_FILE = Path("export/transformer/diffusion_pytorch_model.safetensors")
COMMAND_SECONDS = 300  # a generous bound for one command on a loaded machine


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, model folder): 2 rendered scenes x 4 views of 5 frames at 32x32; a tiny SynCamMaster pipeline."""
    root = tmp_path_factory.mktemp("multiprocess")
    data = render_dataset(root / "data", num_scenes=2, num_views=4, num_frames=5, size=32, seed=7, workers=1,
                          progress=False)
    tiny_pipeline().save_pretrained(root / "model")
    return data, root / "model"


def write_config(path: Path, data: Path, model: Path, processes: int) -> Path:
    """A stage-sync config: ``processes`` x batch ``2 / processes``, a global batch of 2 either way."""
    values = {
        "stage": "sync", "data_root": str(data), "output_dir": str(path.parent), "components": str(model),
        "base_model": str(model), "num_views": 2, "max_azimuth": 180.0, "max_elevation": 90.0, "num_frames": 5,
        "height": 32, "width": 32, "max_sequence_length": 16, "max_steps": STEPS, "batch_size": 2 // processes,
        "checkpoint_every": CHECKPOINT_EVERY, "log_every": 1, "num_workers": 0, "learning_rate": 1e-3,
        "gradient_checkpointing": False, "bf16_timesteps": False, "devices": processes,
        "strategy": "ddp" if processes > 1 else "auto",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    return path


def environment() -> dict[str, str]:
    """The test's own package for every process (Lightning's launcher starts rank 1 with the same environment), one
    thread each (two processes share the CPU), no hub."""
    source = str(Path(syncammaster.__file__).parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "syncammaster.cli", *args]


def run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command(*args), env=environment(), capture_output=True, text=True,
                            timeout=COMMAND_SECONDS)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train(config: Path) -> subprocess.CompletedProcess:
    return run("train", "--config", str(config), "--quiet")


def leftovers(folder: Path) -> list[Path]:
    """Staging folders, their locks and temporary files that a finished command must not leave behind."""
    return [path for path in folder.rglob("*")
            if STAGING_MARK in path.name or path.name.endswith((LOCK_SUFFIX, ".tmp"))]


def losses(run_dir: Path) -> dict[int, float]:
    with (run_dir / METRICS_FILE).open() as handle:
        rows = list(csv.DictReader(handle))
    steps = [int(row["step"]) for row in rows]
    assert steps == sorted(set(steps)), steps  # one writer: each step once
    return {int(row["step"]): float(row["loss"]) for row in rows}


def mvs_names(state: dict[str, torch.Tensor]) -> set[str]:
    marks = ("cam_encoder", "mvs_attn", "projector", "scale_shift_table_mvs")
    return {name for name in state if any(mark in name for mark in marks)}


@pytest.fixture(scope="module")
def one_process(inputs, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("one") / "run"
    train(write_config(run_dir / "sync.toml", *inputs, processes=1))
    return run_dir


@pytest.fixture(scope="module")
def two_processes(inputs, tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("two") / "run"
    result = train(write_config(run_dir / "sync.toml", *inputs, processes=2))
    return run_dir, result.stdout


def test_two_processes_train_the_one_process_model(inputs, one_process, two_processes):
    run_dir, stdout = two_processes
    assert stdout.count("stage sync: exported to") == 1  # rank 0 alone reports
    start = load_file(inputs[1] / "transformer" / "diffusion_pytorch_model.safetensors")
    one, two = load_file(one_process / TRANSFORMER_FILE), load_file(run_dir / TRANSFORMER_FILE)
    trained = mvs_names(start)
    assert trained and one.keys() == two.keys() == start.keys()
    for name in start.keys() - trained:  # the frozen base
        assert torch.equal(one[name], start[name]) and torch.equal(two[name], start[name]), name
    assert all(not torch.equal(one[name], start[name]) for name in trained)
    # The same per-group gradients, summed in another order (one batched matmul against an all-reduce of two) and
    # carried through 12 AdamW steps: float32 rounding apart (3e-7 measured) where training moved each weight by up
    # to 1e-2. Other draws or other batches would differ by the size of an update.
    for name in trained:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=5e-6, msg=name)
    # The logged loss is the global batch's in both (the mean over the processes).
    one_losses, two_losses = losses(one_process), losses(run_dir)
    assert sorted(one_losses) == sorted(two_losses) == list(range(1, STEPS + 1))
    for step, loss in one_losses.items():
        assert two_losses[step] == pytest.approx(loss, rel=1e-4), step
    assert json.loads((run_dir / "export" / "training.json").read_text())["batch_size"] == 1
    assert leftovers(run_dir) == [] and leftovers(one_process) == []


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (field 4 of /proc/PID/stat, after the command name in parentheses)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state_and_parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue  # a process that ended meanwhile
        if int(state_and_parent[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_killed_rank_resumes_to_the_uninterrupted_weights(inputs, two_processes, tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(run_dir / "sync.toml", *inputs, processes=2)
    last = run_dir / CHECKPOINT_DIR / "last.ckpt"
    with (tmp_path / "killed.log").open("w") as log:
        main = subprocess.Popen(command("train", "--config", str(config), "--quiet"), env=environment(),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + COMMAND_SECONDS
            while not last.exists() and main.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            rank1 = [pid for pid in children(main.pid) if b"syncammaster.cli" in Path(f"/proc/{pid}/cmdline")
                     .read_bytes()]
            assert last.exists() and len(rank1) == 1, (tmp_path / "killed.log").read_text()[-3000:]
            os.kill(rank1[0], signal.SIGKILL)
            # Rank 0 then fails in its next all-reduce, or Lightning's watcher of rank 1 kills it.
            assert main.wait(timeout=120) != 0
        finally:
            if main.poll() is None:
                main.kill()
    step = torch.load(last, weights_only=True)["global_step"]
    assert CHECKPOINT_EVERY <= step < STEPS and not (run_dir / "export").exists()  # killed mid-run

    result = train(config)  # the same command again
    assert result.stdout.count("stage sync: exported to") == 1
    resumed, uninterrupted = load_file(run_dir / TRANSFORMER_FILE), load_file(two_processes[0] / TRANSFORMER_FILE)
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():  # same processes, same data, same draws: bit for bit
        assert torch.equal(resumed[name], tensor), name
    assert losses(run_dir) == pytest.approx(losses(two_processes[0]), rel=1e-6)
    assert leftovers(run_dir) == []


def test_cache_on_two_processes_writes_each_item_once(inputs, one_process, two_processes, tmp_path):
    data, model = inputs
    cache = tmp_path / "cache"
    result = run("cache", str(data), "--model", str(model), "--out", str(cache), "--frames", "5", "--height", "32",
                 "--width", "32", "--max-sequence-length", "16", "--lightning", "--devices", "2")
    # 2 captions + 8 videos; the count is the sum of what each process wrote, so an item written twice shows.
    reports = re.findall(r"encoded (\d+) of (\d+) items \((\d+) were already cached\)", result.stdout)
    assert reports == [("10", "10", "0")], result.stdout  # one report, rank 0's
    assert leftovers(cache) == []
    # The same cache as one process wrote (the one-process training's), and as two training processes wrote.
    for other in (one_process / "cache", two_processes[0] / "cache"):
        files = sorted(path.relative_to(cache) for path in cache.rglob("*") if path.is_file())
        assert files == sorted(path.relative_to(other) for path in other.rglob("*") if path.is_file())
        for name in files:
            if name.suffix == ".safetensors":
                ours, theirs = load_file(cache / name), load_file(other / name)
                assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
        assert without_names(json.loads((cache / "cache_config.json").read_text())) == without_names(
            json.loads((other / "cache_config.json").read_text()))
        assert (cache / "scene_index.json").read_text() == (other / "scene_index.json").read_text()


def without_names(config: dict) -> dict:
    """A cache config without the "name" entries (where a model was loaded from, which does not make the cache)."""
    return {key: without_names(value) if isinstance(value, dict) else value
            for key, value in config.items() if key != "name"}
