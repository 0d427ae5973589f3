"""Small helpers for runs over several processes, free of Lightning: which rank this is, and
seeds that differ by epoch and by rank."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from integer keys (``(seed, epoch)``, ``(seed, rank)``): nearby keys
    give unrelated seeds, unlike ``seed + epoch``, where seed 0 at epoch 1 repeats seed 1 at epoch 0."""
    state = np.random.SeedSequence([int(k) % 2**64 for k in keys]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def distributed_position(trainer: Any = None) -> tuple[int, int]:
    """``(rank, world_size)`` of this process: from the Trainer when there is one, else from an
    initialized ``torch.distributed`` process group, else ``(0, 1)``."""
    if trainer is not None:
        return int(trainer.global_rank), int(trainer.world_size)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
