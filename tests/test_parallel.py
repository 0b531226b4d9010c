"""One sample split over processes (torch.distributed, gloo on the CPU) gives the single-process videos."""

import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from syncammaster import CameraRig
from syncammaster.cli import main
from syncammaster.parallel import Share, plan_shares
from syncammaster.scene import Scene

from tiny import CAPTIONS, tiny_pipeline

pytestmark = pytest.mark.slow  # several processes

SIZE = {"height": 16, "width": 32, "num_frames": 5}
STEPS = 2


def cases() -> dict[str, dict]:
    """Calls that split differently: over 2 processes the guidance branches, or the views (unevenly)."""
    reference = torch.rand(5, 16, 32, 3, generator=torch.Generator().manual_seed(1))  # (T, H, W, 3) in [0, 1]
    return {
        # guidance 5: one process per branch, each holding the 2 views
        "branches": {"prompt": CAPTIONS[0], "rig": CameraRig.preset("arc", num_views=2), "guidance_scale": 5.0},
        # no guidance: views 0-1 on rank 0 and view 2 on rank 1, two prompts
        "views": {"prompt": CAPTIONS[:2], "rig": CameraRig.preset("arc", num_views=3), "guidance_scale": 1.0},
        # guidance 5 and 3 views: over 4 processes, two per branch holding views 0-1 and view 2
        "branches3": {"prompt": CAPTIONS[2], "rig": CameraRig.preset("arc", num_views=3), "guidance_scale": 5.0},
        # a clean reference view (timestep 0) held by rank 1
        "reference": {"prompt": CAPTIONS[1], "rig": CameraRig.preset("orbit", num_views=3), "guidance_scale": 1.0,
                      "reference_video": reference, "reference_view": 2, "reference_mode": "clean"},
    }


def run_cases(pipe, names, **kwargs) -> dict[str, np.ndarray]:
    return {name: pipe(**cases()[name], num_inference_steps=STEPS, seed=3, **SIZE, **kwargs).videos for name in names}


def _worker(rank: int, world_size: int, store: str, out: str, names: list[str]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        pipe = tiny_pipeline()
        pipe.set_progress_bar_config(disable=True)
        videos = run_cases(pipe, names, process_group=dist.group.WORLD)
        np.savez(f"{out}{rank}.npz", **videos)
    finally:
        dist.destroy_process_group()


def run_split(tmp_path, processes: int, names: list[str]) -> list[dict[str, np.ndarray]]:
    """Each rank's videos of the named cases, from ``processes`` processes sharing each call."""
    args = (processes, str(tmp_path / "store"), str(tmp_path / "rank"), names)
    mp.spawn(_worker, args=args, nprocs=processes, join=True)
    return [dict(np.load(tmp_path / f"rank{rank}.npz")) for rank in range(processes)]


def test_two_processes_give_the_single_process_videos(tmp_path):
    names = ["branches", "views", "reference"]
    split_runs = run_split(tmp_path, 2, names)

    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    single = run_cases(pipe, names)
    for rank, split in enumerate(split_runs):
        for name, videos in single.items():
            assert split[name].shape == videos.shape, name
            np.testing.assert_allclose(split[name], videos, rtol=0, atol=1e-4, err_msg=f"{name}, rank {rank}")
    # The multi-view attention and the guidance really shape these videos (so a split that dropped either fails).
    unsynced = pipe(**cases()["views"], num_inference_steps=STEPS, seed=3, sync=False, **SIZE).videos
    assert np.abs(unsynced - single["views"]).max() > 1e-3
    unguided = pipe(**{**cases()["branches"], "guidance_scale": 1.0}, num_inference_steps=STEPS, seed=3, **SIZE).videos
    assert np.abs(unguided - single["branches"]).max() > 1e-3


def test_four_processes_split_branches_and_views(tmp_path):
    # guidance 5 over 4 processes: two per branch, views 0-1 and 2 of the 3-view rig (the reference case's rig)
    call = "branches3"
    split_runs = run_split(tmp_path, 4, [call])
    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    single = run_cases(pipe, [call])[call]
    for rank, split in enumerate(split_runs):
        np.testing.assert_allclose(split[call], single, rtol=0, atol=1e-4, err_msg=f"rank {rank}")


def test_shares_split_branches_then_views():
    # two processes under guidance: one branch each, all views
    assert plan_shares(2, 4, 2) == [Share((0,), 0, 4), Share((1,), 0, 4)]
    # without guidance the views are split, the first slices one view longer
    assert plan_shares(2, 3, 1) == [Share((0,), 0, 2), Share((0,), 2, 3)]
    assert plan_shares(3, 4, 1) == [Share((0,), 0, 2), Share((0,), 2, 3), Share((0,), 3, 4)]
    # four processes under guidance: branches, then two view slices per branch
    assert plan_shares(4, 3, 2) == [Share((0,), 0, 2), Share((0,), 2, 3), Share((1,), 0, 2), Share((1,), 2, 3)]
    # an odd count under guidance: both branches on every process, views split
    assert plan_shares(3, 3, 2) == [Share((0, 1), 0, 1), Share((0, 1), 1, 2), Share((0, 1), 2, 3)]


def test_share_rows_are_the_batch_rows_of_its_views():
    # batch (K=2, B=2, V=3), branch-major: rows of branch 1, views 1-2 of both prompts
    assert Share((1,), 1, 3).rows(batch_size=2, num_views=3).tolist() == [7, 8, 10, 11]
    rows = sorted(r for share in plan_shares(4, 3, 2) for r in share.rows(2, 3).tolist())
    assert rows == list(range(12))  # every row once


@pytest.mark.parametrize("processes, views, branches", [(3, 2, 1), (5, 2, 2), (6, 2, 2)])
def test_more_processes_than_views_is_one_line(processes, views, branches):
    with pytest.raises(ValueError, match=f"{processes} processes cannot share {views} views") as error:
        plan_shares(processes, views, branches)
    assert "\n" not in str(error.value) and "run at most" in str(error.value)


def torchrun(*argv, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node N --no-python syncammaster ARGV`` on the CPU, one thread per process."""
    command = ["torchrun", "--standalone", f"--nproc-per-node={processes}", "--no-python", "syncammaster", *argv]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.skipif(shutil.which("torchrun") is None or shutil.which("syncammaster") is None,
                    reason="torchrun or the syncammaster console script is not on PATH")
def test_torchrun_generate_writes_one_scene_like_one_process(tmp_path):
    model = tmp_path / "model"
    tiny_pipeline().save_pretrained(model)
    argv = ["generate", "--prompt", CAPTIONS[2], "--rig", "arc", "--views", "3", "--frames", "5", "--height", "16",
            "--width", "32", "--steps", "2", "--guidance-scale", "1", "--seed", "2", "--model", str(model)]
    result = torchrun(*argv, "--out", str(tmp_path / "two"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("wrote 3 videos") == 1  # rank 0 alone reports
    assert main([*argv, "--out", str(tmp_path / "one"), "--quiet"]) == 0
    two, one = Scene.read(tmp_path / "two"), Scene.read(tmp_path / "one")
    for split_video, video in zip(two.videos, one.videos, strict=True):
        # Same frames up to float rounding, which may flip an 8-bit value and the H.264 coding around it.
        assert np.abs(split_video.astype(float) - video).mean() < 1.0

    # A bad input fails on every process alike and is reported in one line, by rank 0.
    result = torchrun(*argv, "--out", str(tmp_path / "cached"), "--cache", "first-block")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "syncammaster generate: error:" in line]
    assert errors == ["syncammaster generate: error: --cache does not combine with several processes (each would "
                      "skip different steps); drop --cache or run one process"]
    assert not (tmp_path / "cached").exists()
