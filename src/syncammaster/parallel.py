"""One sample's denoising split over the processes of a ``torch.distributed`` group.

The work of a denoising step is a batch of rows, one per (guidance branch, prompt, view): ``K * B * V`` rows, with
K = 2 branches (unconditional, conditional) under classifier-free guidance and 1 without. It is split over the
processes in two ways:

- guidance branches: with K = 2 and an even number of processes, half of them run the unconditional branch and half
  the conditional one (the two branches never talk inside the transformer);
- views: the processes of one branch each hold a contiguous slice of the views (the first ``V % n`` slices one view
  longer). Self-attention, cross-attention and the feed-forward work per view; only the multi-view attention of the
  MVS module looks across views, and it gathers the keys and values of the other views of each frame
  (``ViewSplit.gather_views``).

After each step every process gathers all rows' velocities (``SampleSplit.gather_rows``) and takes the same
scheduler step on the full latents, so all processes hold the same latents and draw the same noise: the result is
the single-process one up to the order of floating-point reductions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Share:
    """One process's part of a sample: guidance branches ``branches`` of views ``start`` to ``stop - 1``."""

    branches: tuple[int, ...]  # indices into the branch-stacked batch: 0 = unconditional, 1 = conditional (with CFG)
    start: int
    stop: int

    def rows(self, batch_size: int, num_views: int) -> torch.Tensor:
        """This share's rows of the (K * B * V) batch, in batch order (branch-major, then prompt, then view)."""
        return torch.tensor([
            (branch * batch_size + prompt) * num_views + view
            for branch in self.branches
            for prompt in range(batch_size)
            for view in range(self.start, self.stop)
        ])


def plan_shares(num_processes: int, num_views: int, num_branches: int) -> list[Share]:
    """Each process's share (index = rank), for ``num_views`` views and 1 or 2 guidance branches.

    Branches are split when there are two of them and the process count is even; the views are split over the
    processes of a branch (uneven counts allowed). Raises a one-line ``ValueError`` when a process would get no view.
    """
    branch_ways = num_branches if num_branches > 1 and num_processes % num_branches == 0 else 1
    view_ways = num_processes // branch_ways
    if view_ways > num_views:
        most = num_views * num_branches if num_branches > 1 else num_views
        guidance = f" and {num_branches} guidance branches" if num_branches > 1 else ""
        raise ValueError(
            f"{num_processes} processes cannot share {num_views} views{guidance}: every process needs a view of its "
            f"own; run at most {most} processes{' (an even number)' if num_branches > 1 else ''}"
        )
    counts = [len(part) for part in torch.arange(num_views).tensor_split(view_ways)]
    starts = [sum(counts[:i]) for i in range(view_ways)]
    all_branches = tuple(range(num_branches))
    return [
        Share(
            branches=all_branches if branch_ways == 1 else (rank // view_ways,),
            start=starts[rank % view_ways],
            stop=starts[rank % view_ways] + counts[rank % view_ways],
        )
        for rank in range(num_processes)
    ]


@dataclass(frozen=True)
class ViewSplit:
    """The views of a sample held by this process, as the transformer's multi-view attention needs to know them.

    The transformer then runs on the local views only (its ``num_views`` is the local count); the MVS attention
    computes the local views' queries against the keys and values of all views, gathered from ``group``.
    """

    num_views: int  # V: all the views of the sample
    counts: tuple[int, ...]  # views held by each process of ``group``, in group-rank order (sum: V)
    index: int  # this process's rank in ``group``
    group: Any  # torch.distributed process group: the processes holding the other views of the same rows

    @property
    def start(self) -> int:
        """The first local view."""
        return sum(self.counts[: self.index])

    @property
    def stop(self) -> int:
        """One past the last local view."""
        return self.start + self.counts[self.index]

    def gather_views(self, tokens: torch.Tensor, tokens_per_view: int) -> torch.Tensor:
        """All views' tokens from each process's local ones (inference only: no gradient flows back).

        Args:
            tokens: (N, V_local * S, ...) the local views' tokens of N sequences (S = tokens_per_view).
        Returns:
            (N, V * S, ...) in view order.
        """
        length = max(self.counts) * tokens_per_view  # all_gather takes equal sizes: pad the shorter slices
        padded = tokens.new_zeros(tokens.shape[0], length, *tokens.shape[2:])
        padded[:, : tokens.shape[1]] = tokens
        parts = [torch.empty_like(padded) for _ in self.counts]
        dist.all_gather(parts, padded, group=self.group)
        kept = [part[:, : count * tokens_per_view] for part, count in zip(parts, self.counts, strict=True)]
        return torch.cat(kept, dim=1)


@dataclass(frozen=True)
class SampleSplit:
    """This process's share of one sample, and everyone's, over the processes of ``group``."""

    shares: tuple[Share, ...]  # every process's share, index = rank in ``group``
    rank: int
    group: Any  # torch.distributed process group
    views: ViewSplit | None  # for the transformer; None when this process holds all the views of its rows

    @property
    def share(self) -> Share:
        return self.shares[self.rank]

    def gather_rows(self, local: torch.Tensor, batch_size: int, num_views: int) -> torch.Tensor:
        """The full (K * B * V, ...) batch from each process's rows (``Share.rows``)."""
        rows = [share.rows(batch_size, num_views) for share in self.shares]
        length = max(len(r) for r in rows)  # all_gather takes equal sizes: pad the shorter shares
        padded = local.new_zeros(length, *local.shape[1:])
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in self.shares]
        dist.all_gather(parts, padded.contiguous(), group=self.group)
        num_branches = max(max(share.branches) for share in self.shares) + 1
        full = local.new_empty(num_branches * batch_size * num_views, *local.shape[1:])
        for part, share_rows in zip(parts, rows, strict=True):
            full[share_rows.to(full.device)] = part[: len(share_rows)]
        return full


def split_sample(group, num_views: int, num_branches: int) -> SampleSplit:
    """Plans one sample over the processes of ``group`` (collective: every process of ``group`` must call it).

    With both branches and views split (4 or more processes under guidance), the processes of each branch get a
    group of their own for the view gathering.
    """
    num_processes, rank = dist.get_world_size(group), dist.get_rank(group)
    shares = plan_shares(num_processes, num_views, num_branches)
    own = shares[rank]
    same_rows = [r for r, share in enumerate(shares) if share.branches == own.branches]  # holders of other views
    if len(same_rows) == 1:
        return SampleSplit(shares=tuple(shares), rank=rank, group=group, views=None)  # all views held here
    if len(same_rows) == num_processes:
        view_group = group
    else:
        global_ranks = [dist.get_global_rank(group, r) for r in same_rows]
        view_group = dist.new_group(global_ranks, use_local_synchronization=True)
    views = ViewSplit(
        num_views=num_views,
        counts=tuple(shares[r].stop - shares[r].start for r in same_rows),
        index=same_rows.index(rank),
        group=view_group,
    )
    return SampleSplit(shares=tuple(shares), rank=rank, group=group, views=views)
