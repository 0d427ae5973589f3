"""Whole-batch loading for data that fits in memory, sharded over distributed ranks.

Instead of one ``__getitem__`` per sample followed by a collate, :class:`TensorLoader` slices
whole batches out of tensors with one index operation each, which for small models is many times
faster than a ``DataLoader`` (see ``benchmarks/``).

Under several processes (DDP, FSDP, ``torchrun``) each rank must see its own part of the data.
:class:`ShardSampler` decides which rows a rank reads in an epoch, the way ``DataLoader`` +
``DistributedSampler`` do: for training, one permutation per epoch drawn from ``(seed, epoch)``
alone (so every rank draws the same one), padded by wrapping around to a multiple of the world
size and dealt out round-robin, so every rank gets the same number of rows and the ranks together
see every row; for evaluation, the rows dealt round-robin without padding, so each example is
counted exactly once across ranks. Lightning's loops call ``loader.sampler.set_epoch(epoch)``
before every epoch, as they do for a ``DataLoader``, so a resumed run draws the order of the
epoch it resumes at.

:class:`ResumableIteration` makes a training loader resumable mid-epoch: Lightning stores the
``state_dict()`` of every training loader that has one in each checkpoint (the epoch in progress
and the batches it has served) and hands it back through ``load_state_dict`` when a run resumes,
so the epoch goes on at the next batch of the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from zoo.distributed import check_rank, derive_seed


class ResumableIteration:
    """The position of a loader in its epochs, which Lightning saves and restores.

    Lightning treats a training loader with ``state_dict`` and ``load_state_dict`` as stateful: it
    stores ``state_dict()`` in every checkpoint (``loops.fit_loop.state_dict.combined_loader``) and,
    when a run resumes, passes it to ``load_state_dict`` before the first batch. The state is the
    epoch in progress and how many of its batches were served; as each epoch's order is drawn
    from ``(seed, epoch)`` alone, that is all it takes to serve the rest of the epoch. A run
    resumed from a checkpoint written every N steps then sees the batches an uninterrupted one
    sees, not the epoch's first batches again.

    Subclasses call :meth:`_batches_to_skip` as an epoch's iteration starts and record each batch
    they hand out with :meth:`_served`.
    """

    _position: tuple[int, int] = (0, 0)
    _resume_at: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self._position
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_at = (int(state.get("epoch", -1)), int(state.get("batches", 0)))

    def _batches_to_skip(self, epoch: int) -> int:
        """The batches of ``epoch`` served before the checkpoint this run resumed from (else 0)."""
        resume, self._resume_at = self._resume_at, None
        skip = resume[1] if resume is not None and resume[0] == epoch else 0
        self._position = (epoch, skip)
        return skip

    def _served(self, epoch: int, batches: int) -> None:
        self._position = (epoch, batches)


class ShardSampler(DistributedSampler):
    r"""The rows one rank reads in one epoch.

    A ``DistributedSampler`` (same attributes and ``set_epoch``; Lightning leaves it in place
    instead of injecting its own) whose permutations are drawn from a generator seeded by
    :func:`~zoo.distributed.derive_seed` ``(seed, epoch)`` and which can also shard evaluation
    data without repeating examples. Serves :class:`TensorLoader` and file-backed ``DataLoader``\ s
    alike, so both read the same rows in the same order.

    Args:
        num_rows: rows of the whole dataset.
        shuffle: a new permutation every epoch, drawn from ``(seed, epoch)``; else rows in order.
        seed: seeds the permutations; the same on every rank.
        rank: this process's rank.
        world_size: number of processes.
        even: pad (by wrapping around to the first rows of the epoch's order) so that every rank
            gets ``ceil(num_rows / world_size)`` rows, as ``DistributedSampler`` does; training
            needs this, since a rank with fewer batches would leave the others waiting in a
            collective. ``False`` (evaluation): no padding, each row counted once; the ranks'
            counts differ by at most one.
    """

    def __init__(
        self,
        num_rows: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even: bool = True,
    ) -> None:
        # DistributedSampler.__init__ wants a dataset only for its length: set its attributes here
        check_rank(rank, world_size)
        self.num_rows = num_rows
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.num_replicas = world_size
        self.even = even
        self.drop_last = False
        self.epoch = 0
        self.num_samples = len(self)
        self.total_size = self.num_samples * world_size if even else num_rows

    @property
    def world_size(self) -> int:
        return self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Serve the order of epoch ``epoch`` next (Lightning calls this before every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.even:
            return -(-self.num_rows // self.world_size)
        return len(range(self.rank, self.num_rows, self.world_size))

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's row indices for ``epoch`` (default: the current one), as an int64 tensor."""
        epoch = self.epoch if epoch is None else epoch
        if self.shuffle:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            order = torch.randperm(self.num_rows, generator=generator)
        else:
            order = torch.arange(self.num_rows)
        if self.world_size == 1:
            return order
        if self.even:
            total = len(self) * self.world_size
            if total > self.num_rows:
                order = order.repeat(-(-total // self.num_rows))[:total]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        """Yields the indices of the current epoch and moves on to the next epoch, so that plain
        loops (without ``set_epoch``) get a new order every pass, as Lightning's loops do."""
        indices = self.indices()[self.skip :]
        self.epoch += 1
        self.skip = 0
        return iter(indices.tolist())

    #: indices of the next epoch to leave out at its start (set by :class:`ShardedDataLoader` when
    #: a run resumes mid-epoch)
    skip = 0


class ShardedDataLoader(ResumableIteration, DataLoader):
    """A ``DataLoader`` over a :class:`ShardSampler` (per-example loading, e.g. image files decoded in
    worker processes) that resumes mid-epoch like :class:`TensorLoader`.

    Iteration starts when the first batch is asked for, after Lightning's ``set_epoch``, so worker
    processes never read ahead in another epoch's order.
    """

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        if not isinstance(sampler, ShardSampler):
            raise TypeError(f"ShardedDataLoader needs a ShardSampler, got {type(sampler).__name__}")
        epoch = sampler.epoch
        skip = self._batches_to_skip(epoch)
        sampler.skip = skip * self.batch_size
        for i, batch in enumerate(super().__iter__(), start=skip):
            self._served(epoch, i + 1)
            yield batch


class TensorLoader(ResumableIteration):
    """Iterate over aligned tensors in batches of ``batch_size`` rows of this rank's shard.

    Args:
        tensors: tensors with the same first dimension, e.g. ``(x, y)``.
        batch_size: rows per batch (per rank, as for a ``DataLoader``).
        shuffle: draw a new permutation for every epoch from ``(seed, epoch)``.
        drop_last: skip a final batch smaller than ``batch_size``.
        seed: seeds the permutations, so a run's batch order is reproducible.
        rank: this process's rank (see :func:`distributed_position`).
        world_size: number of processes sharing the data.
        even: every rank gets the same number of rows (padding with repeated rows); for
            training. ``None``: when shuffling. See :class:`ShardSampler`.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even: bool | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("TensorLoader needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.drop_last = drop_last
        #: which rows this rank reads each epoch; Lightning's loops call ``sampler.set_epoch``
        self.sampler = ShardSampler(
            n,
            shuffle=shuffle,
            seed=seed,
            rank=rank,
            world_size=world_size,
            even=shuffle if even is None else even,
        )

    #: batches are sliced here, not drawn by a batch sampler (Lightning looks for this attribute
    #: on anything with a ``sampler``, as on a ``DataLoader``)
    batch_sampler = None

    @property
    def shuffle(self) -> bool:
        return self.sampler.shuffle

    @property
    def num_rows(self) -> int:
        """Rows this rank reads per epoch."""
        return len(self.sampler)

    def __len__(self) -> int:
        full, rest = divmod(self.num_rows, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        sampler = self.sampler
        epoch = sampler.epoch
        skip = self._batches_to_skip(epoch)
        whole = not sampler.shuffle and sampler.world_size == 1
        order = None if whole else sampler.indices().to(self.tensors[0].device)
        sampler.epoch += 1
        n = self.num_rows
        for i in range(skip, len(self)):
            sl = slice(i * self.batch_size, min(n, (i + 1) * self.batch_size))
            self._served(epoch, i + 1)
            if order is None:
                yield tuple(t[sl] for t in self.tensors)
            else:
                idx = order[sl]
                yield tuple(t[idx] for t in self.tensors)
