"""Which process of a multi-process run this is, and work that only global rank 0 does.

A run on N devices is N processes (started by Lightning's launcher, ``torchrun`` or SLURM) that all run the same
command. Files every process would write alike (an export, a record, the cache index) and the final message are
written by global rank 0 alone; the others wait for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch.distributed as dist

# Where launchers put a process's rank before any process group exists, in the order Lightning reads them: torchrun's
# global RANK, then LOCAL_RANK (Lightning's own launcher on one machine), then SLURM's task number.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID")


class RankZeroError(RuntimeError):
    """Raised in the other processes when global rank 0 failed at work done for all of them."""


def _group_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_rank() -> int:
    """This process's rank: the process group's once one is up, else the launcher's environment (0 when alone)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for name in RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def on_global_zero(work: Callable[[], object]) -> None:
    """Runs ``work()`` in global rank 0 alone; the other processes of a running process group wait until it is done.

    If it fails, rank 0 raises its error and the others raise ``RankZeroError`` with its message, so no process goes
    on as if the work were done, and none waits forever. Without a process group (one process, or processes that
    never started one) the others return at once.
    """
    failure: Exception | None = None
    if global_rank() == 0:
        try:
            work()
        except Exception as error:  # re-raised below, after the other processes have been told
            failure = error
    if _group_size() > 1:
        outcome = [None if failure is None else f"{type(failure).__name__}: {failure}"]
        dist.broadcast_object_list(outcome, src=0)  # also the barrier: every process waits for rank 0 here
        if failure is None and outcome[0] is not None:
            raise RankZeroError(f"global rank 0 failed: {outcome[0]}")
    if failure is not None:
        raise failure


def leave_process_group() -> None:
    """Ends the default process group, if one is up, once every process has reached this point.

    Lightning starts the group of a multi-process training run and leaves it up; its communication threads, still
    running when the interpreter exits, can abort the process ("terminate called without an active exception") after
    all the work is done. Ending it explicitly lets every process exit cleanly.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
