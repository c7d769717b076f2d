"""Data-parallel training under ``torchrun`` (one process per device; NCCL on GPU, gloo on CPU).

``Method.training_step`` runs forward, backward and its optimizer step(s) inside the method, where
``DistributedDataParallel``'s forward wrapper cannot reach. The same synchronisation is therefore
attached to the method's own optimizers: a step pre-hook averages each optimizer's gradients over
all processes (one flat all-reduce per dtype), so every replica takes the identical step that one
process would take on the whole batch. Parameters and buffers start from rank 0's copy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .method import Method


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The process group that ``torchrun`` describes in the environment (a single process otherwise)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(world: World, device: torch.device) -> None:
    if world.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def replicate(method: Method) -> None:
    """Copy rank 0's parameters and buffers to every process and average gradients before each
    optimizer step from now on."""
    for tensor in list(method.parameters()) + list(method.buffers()):
        dist.broadcast(tensor.data, src=0)
    for optimizer in method.optimizers.values():
        optimizer.register_step_pre_hook(_average_gradients)


def average(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each logged value over all processes (keys must agree)."""
    keys = sorted(values)
    packed = torch.tensor([float(values[key]) for key in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    packed /= dist.get_world_size()
    return dict(zip(keys, packed.tolist()))


def _average_gradients(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for grad in grads:
        by_dtype.setdefault(grad.dtype, []).append(grad)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for grad in group:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()
