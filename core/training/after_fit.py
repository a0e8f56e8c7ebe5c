"""After training: how far to trust the best checkpoint's answers.

Runs once the best checkpoint is tested: fits the temperature on the validation logits
(training.calibration), sets the unknown-input thresholds on the validation scores
(training.unknown), keeps a bank of training features for the kNN score, and saves every
val and test image's prediction for `compare`. Writes `calibration.json`, and adds
`temperature` and `unknown` to `model.json`, which inference and export read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.config import TrainConfig
from core.durable import fsync_file, replace_durably, write_json_atomic
from core.training.calibration import calibration_report, softmax
from core.training.model_card import read_model_card
from core.training.outputs import Outputs, collect_outputs
from core.training.prepare import PreparedRun
from core.training.run_files import CALIBRATION, FEATURE_BANK, MODEL_CARD, PREDICTIONS
from core.training.unknown import BANK_SIZE, candidate_scores, detector_report, normalise


def calibrate_run(config: TrainConfig, prepared: PreparedRun, run_dir: Path) -> dict:
    """Calibrate and set the detector of the model in `prepared` (the best checkpoint loaded);
    returns {calibration: {temperature, ece_before, ece_after}, unknown: {...}} for the
    run's result."""
    options = {"autocast": prepared.autocast, "tta_flip": config.tta_flip}
    val = collect_outputs(prepared.model, prepared.val, prepared.mean, prepared.std, **options)
    test = collect_outputs(prepared.model, prepared.test, prepared.mean, prepared.std, **options)
    bank = feature_bank(prepared, config.seed)
    report = calibration_report(val.logits, val.labels, test.logits, test.labels)
    temperature = report["temperature"]
    detector = detector_report(candidate_scores(val.logits, temperature, val.features, bank),
                               candidate_scores(test.logits, temperature, test.features, bank))
    if bank is not None:
        np.save(run_dir / FEATURE_BANK, bank.astype(np.float16))
    save_predictions(run_dir, prepared, {"val": val, "test": test}, temperature)
    write_json_atomic(run_dir / CALIBRATION, report | {"unknown": detector})
    record_in_model_card(run_dir, temperature, detector, has_bank=bank is not None)
    return {"calibration": {key: report[key] for key in ("temperature", "ece_before",
                                                          "ece_after", "split")},
            "unknown": None if detector is None else in_use(detector)}


def feature_bank(prepared: PreparedRun, seed: int) -> np.ndarray | None:
    """Normalised penultimate features of up to BANK_SIZE training images (seeded pick)."""
    train = prepared.train
    if len(train) == 0:
        return None
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(train), generator=generator)[:BANK_SIZE].sort().values
    out = collect_outputs(prepared.model, train, prepared.mean, prepared.std,
                          autocast=prepared.autocast, limit_index=index)
    if out.features is None:
        return None
    return normalise(out.features).astype(np.float16).astype(np.float32)  # as it is saved


def in_use(detector: dict) -> dict:
    chosen = detector["candidates"][detector["method"]]
    return {"method": detector["method"], "threshold": detector["threshold"],
            "keep": detector["keep"], "val_answered": chosen["val_answered"],
            "test_answered": chosen["test_answered"]}


def save_predictions(run_dir: Path, prepared: PreparedRun, outputs: dict[str, Outputs],
                     temperature: float) -> None:
    """Per split: dataset item index, true label, predicted label (as the test accuracy
    counts it, TTA included), calibrated probability of the prediction."""
    arrays = {}
    for split, out in outputs.items():
        probs = softmax(out.scored_logits, temperature) if len(out.labels) else np.ones((0, 1))
        arrays[f"{split}_index"] = np.asarray(prepared.dataset.indices(split), dtype=np.int64)
        arrays[f"{split}_label"] = out.labels.astype(np.int64)
        arrays[f"{split}_predicted"] = probs.argmax(axis=1).astype(np.int64)
        arrays[f"{split}_prob"] = probs.max(axis=1, initial=0.0).astype(np.float32)
    tmp = run_dir / f".{PREDICTIONS}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    fsync_file(tmp)
    replace_durably(tmp, run_dir / PREDICTIONS)


def record_in_model_card(run_dir: Path, temperature: float, detector: dict | None,
                         has_bank: bool) -> None:
    """`temperature` and `unknown` {method, threshold, keep, knn_k, bank} into model.json."""
    card = read_model_card(run_dir)
    card["temperature"] = temperature
    card["unknown"] = None if detector is None else {
        "method": detector["method"], "threshold": detector["threshold"],
        "keep": detector["keep"], "knn_k": detector["knn_k"],
        "thresholds": {name: c["threshold"] for name, c in detector["candidates"].items()},
        "bank": FEATURE_BANK if has_bank else None}
    write_json_atomic(run_dir / MODEL_CARD, card)
