"""torchrun's environment -> (rank, world size, device); process-group set-up and a few collectives.

The only module that imports torch.distributed besides the training loop's DDP wrapper: the model and
the objective know nothing of distribution. One process without torchrun is world size 1.
"""
from __future__ import annotations

import datetime
import os
from typing import NamedTuple

import torch
import torch.distributed as td

from electra.errors import UserError


class Dist(NamedTuple):
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:  # torch's message lists every backend it knows; ours names what the flag takes
        raise UserError(f"--device {name!r} is not a device: use auto, cpu or cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} was asked for but no CUDA device is visible; use --device cpu")
        return torch.device("cuda", local_rank if dev.index is None else dev.index)
    return dev


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun): known before `init`, and after a failed one."""
    return int(os.environ.get("RANK", "0"))


def init(device: str = "auto") -> Dist:
    """Read RANK / LOCAL_RANK / WORLD_SIZE (set by torchrun) and join the group: NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = launched_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world > 1 and not td.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        timeout = datetime.timedelta(minutes=30)
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if restart > 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            # After torchrun restarts a failed group, the agent's store still holds the dead workers'
            # addresses under the default keys; a per-attempt prefix keeps the new group from dialling them.
            store = td.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                                is_master=False, timeout=timeout)
            td.init_process_group(backend, store=td.PrefixStore(f"electra/attempt_{restart}", store),
                                  rank=rank, world_size=world, timeout=timeout)
        else:
            td.init_process_group(backend, timeout=timeout)
    return Dist(rank, local_rank, world, dev)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if td.is_initialized() and td.get_world_size() > 1:
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if the flag is set on any rank (used for stop requests: all ranks must stop at the same step)."""
    return max_over_ranks([1.0 if flag else 0.0], device)[0] > 0


def max_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Each value's maximum over the ranks (timings that every rank must plan from alike)."""
    if not (td.is_initialized() and td.get_world_size() > 1):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return t.tolist()


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor of possibly different lengths from every rank (for AUC over all ranks)."""
    if not (td.is_initialized() and td.get_world_size() > 1):
        return t
    sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(td.get_world_size())]
    td.all_gather(sizes, torch.tensor([t.numel()], device=t.device))
    width = int(max(s.item() for s in sizes))
    padded = torch.zeros(width, dtype=t.dtype, device=t.device)
    padded[: t.numel()] = t
    out = [torch.zeros_like(padded) for _ in sizes]
    td.all_gather(out, padded)
    return torch.cat([o[: int(s.item())] for o, s in zip(out, sizes)])


def barrier() -> None:
    if td.is_initialized():
        td.barrier()


def cleanup() -> None:
    """Leave the group together: a rank that tears its connections down while a peer is still finishing
    can make the peer's gloo threads abort (seen as SIGABRT at exit)."""
    if td.is_initialized():
        td.barrier()
        td.destroy_process_group()


# ---------------------------------------------------------------------------------------------------
# FSDP (PyTorch's fully_shard): shard each Transformer block, then the rest; checkpoints are gathered to
# full tensors so that a sharded run and a single-device run read and write the same files.


def shard_model(model: torch.nn.Module, block_types: tuple[type, ...]) -> torch.nn.Module:
    """Apply fully_shard to every block (each shared block once), then to the root module."""
    import warnings

    from torch.distributed.fsdp import fully_shard
    # FSDP2 warns once per rank that the step's outputs include views (losses, logits): only an in-place op on
    # one would lose its pre-backward hook, and the training loop never modifies them in place
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor", category=UserWarning)

    seen: set[int] = set()
    for m in model.modules():
        if isinstance(m, block_types) and id(m) not in seen:
            seen.add(id(m))
            fully_shard(m)
    fully_shard(model)
    return model


def _full() -> object:
    from torch.distributed.checkpoint.state_dict import StateDictOptions
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def gather_full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(model state dict, optimizer state dict in torch's index form), as full CPU tensors on rank 0.
    Collective: every rank must call it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    weights = get_model_state_dict(model, options=_full())
    osd = get_optimizer_state_dict(model, optimizer, options=_full())
    if "param_groups" not in osd:  # ranks other than 0 get empty dicts
        return weights, {}
    index = {}
    groups = []
    for g in osd["param_groups"]:
        ids = []
        for fqn in g["params"]:
            index.setdefault(fqn, len(index))
            ids.append(index[fqn])
        groups.append({**g, "params": ids})
    state = {index[fqn]: s for fqn, s in osd["state"].items()}
    return weights, {"state": state, "param_groups": groups}


def load_full_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, sd: dict) -> None:
    """Load an index-form optimizer state (as a single-device run saves it) into a sharded optimizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    fqn_sd = {
        "state": {order[int(i)]: s for i, s in sd["state"].items()},
        "param_groups": [{**g, "params": [order[int(i)] for i in g["params"]]} for g in sd["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, optim_state_dict=fqn_sd,
                             options=StateDictOptions(full_state_dict=True))
