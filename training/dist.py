"""Rank / world helpers that also work in one process (rank 0 of 1 when torch.distributed is off).

Under `torchrun --nproc_per_node N` (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT), `init_from_env` joins the process group: NCCL when CUDA is available,
gloo on CPU. Without those variables nothing is initialised and every helper here degrades to the
single-process answer, so the training loop has one code path.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as torch_dist

_ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int                  # Global rank, 0 .. world_size - 1.
    world_size: int            # Number of processes.
    local_rank: int            # Rank on this node (selects the GPU).
    device: torch.device       # The device this process trains on.
    backend: str | None        # "nccl" / "gloo" when initialised, None in a single process.

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment names a multi-process job (torchrun sets these variables)."""
    return all(key in os.environ for key in _ENV_KEYS) and int(os.environ["WORLD_SIZE"]) > 1


def init_from_env(device: str | None = None, timeout_s: float = 1800) -> DistInfo:
    """Join the torchrun process group if there is one; pick this process's device.

    device: "cpu", "cuda" or None (= CUDA when available). Under torchrun with CUDA each process
        takes GPU LOCAL_RANK.
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but CUDA is not available")
    if not launched_by_torchrun():
        dev = torch.device(device if device is not None else ("cuda" if want_cuda else "cpu"))
        return DistInfo(rank=0, world_size=1, local_rank=0, device=dev, backend=None)
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if want_cuda:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not torch_dist.is_initialized():
        timeout = datetime.timedelta(seconds=timeout_s)
        if backend == "nccl":
            torch_dist.init_process_group(backend=backend, timeout=timeout, device_id=dev)
        else:
            torch_dist.init_process_group(backend=backend, timeout=timeout)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, backend=backend)


def shutdown() -> None:
    """Leave the process group (no-op in a single process)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank() -> int:
    return torch_dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_initialized() else 1


def barrier() -> None:
    if get_world_size() > 1:
        torch_dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all processes, in place (returned for chaining). Identity in one process."""
    if get_world_size() > 1:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's `flag`, on every process (so that all ranks stop at the same step)."""
    if get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch_dist.broadcast(t, src=0)
    return bool(t.item() > 0.5)
