"""Checkpoints as safetensors + JSON: no pickle anywhere, so loading one runs no code.

`<stem>.safetensors` holds the model's tensors (`model.*`) and, for resumable
checkpoints, the optimizer's (`optim.<param>.<key>`) and any EMA of the weights
(`ema.*`, core.training.ema); `<stem>.json` holds the
rest (epoch, step, best so far, optimizer param groups). Both are written to a
temporary file, fsynced and renamed, JSON last: a checkpoint is the pair whose
JSON exists, and a crash mid-write leaves the previous pair whole. The state is
also stored inside the safetensors header and read from there, so a crash between
the two renames cannot pair new weights with the previous epoch's state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from core.durable import fsync_file, replace_durably, write_json_atomic
from core.training.run_files import state_file, weights_file

STATE_KEY = "cnn_studio_state"  # the checkpoint's JSON state, inside the safetensors header


def save_checkpoint(folder: Path, stem: str, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    state: dict | None = None, ema: torch.nn.Module | None = None) -> None:
    """`ema`: a WeightEMA whose averaged weights go in too (`ema.*`), for resuming."""
    weights = unwrap(model).state_dict()
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in weights.items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().contiguous()
                        for k, v in unwrap(ema).state_dict().items()})
    meta = dict(state or {})
    if optimizer is not None:
        optim_tensors, meta["optimizer"] = flatten_optimizer(optimizer)
        tensors.update(optim_tensors)
    save_tensors_atomic(weights_file(folder, stem), tensors,
                        metadata={STATE_KEY: json.dumps(meta)})
    write_json_atomic(folder / f"{stem}.json", meta)


def load_checkpoint(folder: Path, stem: str, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    ema: torch.nn.Module | None = None) -> dict:
    """Load weights (and optimizer state, EMA weights) into the given objects; return the JSON
    state. An `ema` the checkpoint has no average for starts from the model's weights."""
    with safe_open(str(weights_file(folder, stem)), framework="pt",
                   device=str(param_device(model))) as handle:
        embedded = (handle.metadata() or {}).get(STATE_KEY)
        names = handle.keys()
        tensors = {key: handle.get_tensor(key) for key in names}
    meta = json.loads(embedded) if embedded else read_json_state(folder, stem)
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    unwrap(model).load_state_dict(weights)
    if ema is not None:
        averaged = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        unwrap(ema).load_state_dict(averaged or weights)
    if optimizer is not None and "optimizer" in meta:
        optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    return meta


def has_checkpoint(folder: Path, stem: str) -> bool:
    return state_file(folder, stem).exists() and (weights_file(folder, stem)).exists()


def checkpoint_state(folder: Path, stem: str) -> dict:
    """The state saved with a checkpoint (epoch, progress...), without loading its tensors."""
    with safe_open(str(weights_file(folder, stem)), framework="pt") as handle:
        embedded = (handle.metadata() or {}).get(STATE_KEY)
    return json.loads(embedded) if embedded else read_json_state(folder, stem)


def read_json_state(folder: Path, stem: str) -> dict:
    return json.loads(state_file(folder, stem).read_text())


def remove_partial_writes(folder: Path) -> None:
    """Delete the temp files of checkpoint writes that a SIGKILL cut short (an exception
    removes its own); only the run's own process writes its folder, so none is in flight."""
    for pattern in (".*.safetensors.*.tmp", ".*.json.*.tmp"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def load_weights(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    tensors = load_file(str(path), device=device)
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param, values in state_dict["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{param}.{key}"] = value.detach().contiguous()
            else:
                scalars[f"{param}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, param, key = name.split(".", 2)
            state.setdefault(int(param), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        param, key = name.split(".", 1)
        state.setdefault(int(param), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor],
                        metadata: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        fsync_file(tmp)
        replace_durably(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under torch.compile's or DDP's wrapper."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


def param_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
