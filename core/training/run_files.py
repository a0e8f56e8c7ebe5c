"""The files in a run's folder, by name: what training writes and every reader opens.
torch-free, so the pages and the queue can ask what a run has without loading a model."""

from __future__ import annotations

from pathlib import Path

CONFIG = "config.json"  # the TrainConfig the run was created with
MODEL_CARD = "model.json"  # what inference needs to rebuild the model (training.model_card)
LOG = "log.txt"  # one line per epoch, notes, the traceback of a failure
TORCHRUN_LOG = "torchrun.log"  # the output of a multi-GPU run's torchrun job
TEST_CONFUSION = "confusion_test.npy"  # the best checkpoint's confusion matrix on the test split
CALIBRATION = "calibration.json"  # temperature, ECE, reliability bins, the unknown detector
FEATURE_BANK = "features_train.npy"  # normalised penultimate features of training images (kNN)
PREDICTIONS = "predictions.npz"  # per-image val and test predictions of the best checkpoint
BEST, LAST = "best", "last"  # the checkpoints: best validation accuracy, and the latest epoch


def weights_file(folder: Path, stem: str = BEST) -> Path:
    """A checkpoint's tensors (safetensors; training.checkpoint writes them)."""
    return folder / f"{stem}.safetensors"


def state_file(folder: Path, stem: str) -> Path:
    """A checkpoint's JSON state, written after its tensors (the pair is whole once it exists)."""
    return folder / f"{stem}.json"


def has_trained_model(folder: Path) -> bool:
    """Whether the folder holds a model to classify with: a card and best weights."""
    return (folder / MODEL_CARD).exists() and weights_file(folder).exists()
