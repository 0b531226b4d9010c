"""Work done once by global rank 0, with the other processes of a gloo group waiting for it."""

import json
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from syncammaster.ranks import RankZeroError, global_rank, on_global_zero


def test_rank_comes_from_the_launchers_environment(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert global_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's launcher starts ranks 1..N-1 with it
    assert global_rank() == 1
    monkeypatch.setenv("RANK", "3")  # torchrun's global rank comes first
    assert global_rank() == 3


def _worker(rank: int, store: str, out: str, fail: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    record = Path(out) / f"rank{rank}.json"

    def work():
        if fail:
            raise OSError("No space left on device")
        (Path(out) / "written").write_text(str(global_rank()))

    try:
        on_global_zero(work)
        outcome = "returned"
    except (RankZeroError, OSError) as error:
        outcome = f"{type(error).__name__}: {error}"
    # What rank 1 saw once on_global_zero let it go: rank 0's file, complete.
    written = (Path(out) / "written").read_text() if (Path(out) / "written").exists() else None
    record.write_text(json.dumps({"outcome": outcome, "written": written}))
    dist.destroy_process_group()


@pytest.mark.slow
def test_only_rank_zero_works_and_the_others_wait_for_it_or_share_its_failure(tmp_path):
    results = {}
    for fail in (False, True):
        out = tmp_path / str(fail)
        out.mkdir()
        mp.spawn(_worker, args=(str(tmp_path / f"store{fail}"), str(out), fail), nprocs=2, join=True)
        results[fail] = [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert results[False] == [{"outcome": "returned", "written": "0"}] * 2  # written by rank 0, seen by rank 1
    rank0, rank1 = results[True]
    assert rank0["outcome"] == "OSError: No space left on device"
    assert rank1["outcome"] == "RankZeroError: global rank 0 failed: OSError: No space left on device"
