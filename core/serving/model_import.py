"""Bring a model trained elsewhere in as a run: safetensors weights plus a model card.

Only safetensors is accepted: a pickle (`torch.save`'s .pt / .pth / .pkl) runs code when it
is loaded, so it is refused before a byte of it is interpreted. The card is the run's
model.json (or an export's .card.json): model, classes, in_chans, image_size, mean, std.
The model must build from the card and take the weights strictly, or nothing is created.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors

from core.config import TrainConfig
from core.durable import write_json_atomic
from core.runs.record import run_folder
from core.store import Store
from core.training.checkpoint import save_tensors_atomic
from core.training.run_files import CONFIG, MODEL_CARD, weights_file
from core.workspace import runs_dir
from models import ModelError, create_model

PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar"})
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
CARD_KEYS = ("model", "classes", "in_chans", "image_size", "mean", "std")
EXPORT_HINT = ("Save the weights as safetensors instead: "
               "safetensors.torch.save_file(model.state_dict(), 'model.safetensors').")


def import_model(weights: Path | str | bytes, card: dict | Path | str | bytes, name: str,
                 store: Store | None = None) -> str:
    """Create a completed run named `name` from safetensors weights and a model card;
    returns its run id. ValueError says what is wrong when the pair cannot be used."""
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ValueError("Give the imported model a name of 1 to 128 characters.")
    card = checked_card(read_card(card))
    tensors = read_safetensors(weights)
    model, state = build_and_load(card, tensors)
    store = store or Store()
    config = TrainConfig(data=card.get("data") or "imported", model=card["model"],
                         image_size=card["image_size"], epochs=1, name=name.strip(),
                         extra={"imported": True} | ({"spec": card["spec"]}
                                                     if card.get("spec") else {}))
    run_id = store.create_run(config.to_dict(), name=config.name, status="completed")
    try:
        write_run_files(run_folder(run_id), config, card, state)
    except BaseException:
        store.delete_run(run_id)
        shutil.rmtree(runs_dir() / run_id, ignore_errors=True)
        raise
    metrics = card_metrics(card)
    summary = {"imported": True, "status": "completed", "model": card["model"],
               "data": config.data, "classes": card["classes"], "image_size": card["image_size"],
               "params": sum(p.numel() for p in model.parameters()),
               "card_metrics": card.get("metrics"), "source_run": card.get("run_id"), **metrics}
    now = time.time()
    store.update_run(run_id, started_at=now, finished_at=now, summary=summary,
                     **{key: metrics[key] for key in ("best_val_acc", "test_acc")
                        if key in metrics})
    return run_id


def card_metrics(card: dict) -> dict:
    """The card's own results (an export's card records them; a model.json does not):
    {best_val_acc, test_acc, best_epoch} where they are numbers, so the Runs page shows the
    model's accuracy rather than an empty row."""
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    kept = {key: float(metrics[key]) for key in ("best_val_acc", "test_acc")
            if isinstance(metrics.get(key), int | float) and not isinstance(metrics[key], bool)
            and 0 <= metrics[key] <= 1}
    if isinstance(metrics.get("best_epoch"), int) and not isinstance(metrics["best_epoch"], bool):
        kept["best_epoch"] = metrics["best_epoch"]
    return kept


def write_run_files(folder: Path, config: TrainConfig, card: dict,
                    state: dict[str, torch.Tensor]) -> None:
    """What load_model reads: the best weights (keys `model.*`) and the model card."""
    write_json_atomic(folder / CONFIG, config.to_dict())
    save_tensors_atomic(weights_file(folder), {f"model.{k}": v for k, v in state.items()})
    write_json_atomic(folder / MODEL_CARD, {key: card.get(key) for key in (
        *CARD_KEYS, "data", "content_hash", "spec")} | {"resize": card.get("resize") or "crop"})


def read_card(card: dict | Path | str | bytes) -> dict:
    """The card as a dict, from a dict, a JSON file, or the bytes of one (an upload)."""
    if isinstance(card, dict):
        return dict(card)
    label = "The uploaded model card" if isinstance(card, bytes) else f"The model card {card}"
    try:
        data = json.loads(card if isinstance(card, bytes) else Path(card).read_text())
    except FileNotFoundError:
        raise ValueError(f"{label} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{label} is not valid JSON ({error}).") from None
    if not isinstance(data, dict):
        raise ValueError(f"{label} must be a JSON object.")
    return data


def checked_card(card: dict) -> dict:
    """The card if it has what inference needs; ValueError listing what is missing or wrong."""
    problems = [f"missing {key!r}" for key in CARD_KEYS if key not in card]
    if not problems:
        classes, chans = card["classes"], card["in_chans"]
        if not isinstance(classes, list) or len(classes) < 2 \
                or not all(isinstance(c, str) and c for c in classes):
            problems.append("'classes' must be a list of two or more class names")
        if chans not in (1, 3):
            problems.append("'in_chans' must be 1 (grayscale) or 3 (RGB)")
        if not isinstance(card["image_size"], int) or not 16 <= card["image_size"] <= 1024:
            problems.append("'image_size' must be a whole number of pixels from 16 to 1024")
        for key in ("mean", "std"):
            values = card[key]
            if not isinstance(values, list) or len(values) != chans \
                    or not all(isinstance(v, (int, float)) for v in values):
                problems.append(f"{key!r} must be a list of {chans} numbers (one per channel)")
        if isinstance(card["std"], list) and any(isinstance(v, (int, float)) and v <= 0
                                                 for v in card["std"]):
            problems.append("'std' values must be positive")
    if problems:
        raise ValueError("The model card cannot be used: " + "; ".join(problems) +
                         ". Use the model.json of a run, or an export's .card.json.")
    return card


def read_safetensors(weights: Path | str | bytes) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or bytes; anything else (a pickle) is refused unread."""
    if isinstance(weights, (bytes, bytearray, memoryview)):
        data, label = bytes(weights), "The uploaded weights"
    else:
        path = Path(weights)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ValueError(f"{path.name} looks like a PyTorch pickle ({path.suffix}); "
                             f"pickles can run code when loaded, so they are not accepted. "
                             + EXPORT_HINT)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ValueError(f"The weights file {path} does not exist.") from None
        label = path.name
    if not is_safetensors(data):
        kind = "a pickle" if data[:1] == b"\x80" or data[:2] == b"PK" else "not safetensors"
        raise ValueError(f"{label} is {kind}; only safetensors weights are accepted. "
                         + EXPORT_HINT)
    try:
        return load_safetensors(data)
    except Exception as error:  # noqa: BLE001 - a damaged file: a sentence, not a traceback
        raise ValueError(f"{label} could not be read as safetensors ({error}).") from None


def is_safetensors(data: bytes) -> bool:
    """safetensors layout: an 8-byte little-endian header length, then a JSON object."""
    if len(data) < 10:
        return False
    (length,) = struct.unpack("<Q", data[:8])
    if not 2 <= length <= min(MAX_HEADER_BYTES, len(data) - 8):
        return False
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(header, dict)


def build_and_load(card: dict, tensors: dict[str, torch.Tensor],
                   ) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Build the card's model and load the weights strictly; returns (model, state dict)."""
    try:
        model = create_model(card.get("spec") or card["model"], in_chans=card["in_chans"],
                             num_classes=len(card["classes"]), image_size=card["image_size"])
    except (ModelError, ValueError) as error:
        raise ValueError(f"The card's model cannot be built: {error}") from None
    state = model_weights(tensors)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(weights_mismatch(card, model, state, error)) from None
    model.eval()
    with torch.no_grad():  # a last check: one image goes through
        size = card["image_size"]
        logits = model(torch.zeros(1, card["in_chans"], size, size))
    if tuple(logits.shape) != (1, len(card["classes"])):
        raise ValueError(f"The model gives {tuple(logits.shape)[1:]} outputs per image, "
                         f"not one per class ({len(card['classes'])}).")
    return model, state


def model_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our checkpoints prefix the model's tensors with `model.` (and optimizer state with
    `optim.`); a plain state_dict has no prefix."""
    if tensors and all(key.startswith(("model.", "optim.")) for key in tensors):
        return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return dict(tensors)


def weights_mismatch(card: dict, model: torch.nn.Module, state: dict, error: Exception) -> str:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(own)
              if k in state and state[k].shape != own[k].shape]
    parts = [f"{len(items)} {what} (e.g. {', '.join(items[:3])})"
             for what, items in (("missing", missing), ("unexpected", unexpected),
                                 ("with another shape", shapes)) if items]
    detail = "; ".join(parts) or str(error).splitlines()[0]
    return (f"The weights do not fit the card's model {card['model']!r} for "
            f"{len(card['classes'])} classes, {card['in_chans']} channel(s), "
            f"{card['image_size']} px: {detail}. Check that the card belongs to these weights.")
