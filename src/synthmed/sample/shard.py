"""Split work across the processes `accelerate launch` / torchrun started and gather the results back in order.

Every batch of jobs is dealt round-robin: process p does rows p, p + N, p + 2N, ... of it. Because each
image's result depends only on its own seed (see `synthmed.models.sampling`), the gathered batch is the
one a single process would have made, so the main process writes the very same files and manifest rows.
Run plainly (no launcher), this is one process of one and nothing is exchanged.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from synthmed.models.device import launched_without_gpu, resolve_device

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessShard:
    """This process's place: `index` of `count` processes in all, `local_index` on its own machine."""

    index: int = 0
    count: int = 1
    local_index: int = 0

    @property
    def is_main(self) -> bool:
        """The process that writes files (index 0)."""
        return self.index == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """The items this process does: every `count`-th one, starting at `index`."""
        return list(items[self.index :: self.count])

    def gather(self, mine: list[R], *, to_all: bool = False) -> list[R] | None:
        """Every process's `share` results merged back into the order of the items they came from.

        The main process gets the list (every process with `to_all`); the others get None. Collective:
        every process must call it, the same number of times.
        """
        if self.count == 1:
            return mine
        parts: list[list[R]] = [[] for _ in range(self.count)]
        if to_all:
            torch.distributed.all_gather_object(parts, mine)
            return merge_shares(parts)
        torch.distributed.gather_object(mine, parts if self.is_main else None, dst=0)
        return merge_shares(parts) if self.is_main else None

    def device(self, requested: str) -> torch.device:
        """`requested` ('auto', 'cpu', 'cuda', 'cuda:1', ...), where 'auto' and 'cuda' mean this process's own GPU."""
        if self.count > 1 and requested in ("auto", "cuda") and torch.cuda.is_available():
            return torch.device("cuda", self.local_index % torch.cuda.device_count())
        return resolve_device(requested)

    def wait(self) -> None:
        """Block until every process gets here (e.g. until the main process has published the output)."""
        if self.count > 1:
            torch.distributed.barrier()


def merge_shares(parts: list[list[R]]) -> list[R]:
    """The inverse of `share`: part p holds items p, p + N, ... of N parts; returns all items in order."""
    merged: list = [None] * sum(len(part) for part in parts)
    for index, part in enumerate(parts):
        merged[index :: len(parts)] = part
    return merged


@functools.cache
def current_shard() -> ProcessShard:
    """This process's shard: from the launcher's environment (joining its process group), else 0 of 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return ProcessShard()
    from accelerate import PartialState

    state = PartialState(cpu=launched_without_gpu())  # sets up the process group once per process
    shard = ProcessShard(state.process_index, state.num_processes, state.local_process_index)
    logger.info("process %d of %d (%s) takes its share of the work", shard.index, shard.count, state.backend)
    return shard


def sharded_batches(
    jobs: Sequence[T], batch_size: int, shard: ProcessShard, run: Callable[[list[T]], torch.Tensor]
) -> Iterator[tuple[list[T], torch.Tensor]]:
    """For each batch of `batch_size` jobs, `run` this process's share, gather; yield (batch, results in order).

    `run` maps a non-empty list of jobs to a tensor with one row per job. The main process gets every
    batch; the others do their share and yield nothing (so a loop that writes files runs on the main only).
    """
    for start in range(0, len(jobs), batch_size):
        batch = list(jobs[start : start + batch_size])
        mine = shard.share(batch)
        rows = list(run(mine).cpu()) if mine else []
        merged = shard.gather(rows)
        if merged is not None:
            yield batch, torch.stack(merged)
