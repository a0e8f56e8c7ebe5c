"""Load a run's trained model and classify images the way its validation path saw them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data.images import ImageRejected, decode_image
from core.data.loader import to_model_input
from core.data.transforms import fit_image
from core.store import Store
from core.training.calibration import softmax
from core.training.checkpoint import load_weights
from core.training.model_card import read_model_card
from core.training.outputs import features_of
from core.training.run_files import MODEL_CARD, weights_file
from core.training.unknown import Detector
from core.workspace import runs_dir
from models import create_model

MAX_PIXELS = 40_000_000


class ModelUnavailable(ValueError):
    """The run has no usable trained model; the message says why and what to do."""


@dataclass
class LoadedModel:
    run_id: str
    model: torch.nn.Module
    card: dict  # model.json: classes, image size, normalisation, temperature, unknown
    device: torch.device
    detector: Detector | None = field(default=None)  # "none of the classes I know"

    @property
    def classes(self) -> list[str]:
        return self.card["classes"]

    def open(self, source: str | Path | bytes) -> Image.Image:
        """`source` decoded as the training cache decodes it (a JPEG at reduced size: see
        core.data.images.decode_image); give these images to top_k for the cache's pixels."""
        return open_image(source, draft_to=self.card["image_size"])

    @property
    def temperature(self) -> float:
        """The calibration temperature (1.0 for runs from before calibration)."""
        return float(self.card.get("temperature") or 1.0)

    def to_batch(self, images: list[Image.Image]) -> torch.Tensor:
        size, channels = self.card["image_size"], self.card["in_chans"]
        mode = self.card.get("resize") or "crop"  # the run's resize mode (older runs: crop)
        array = np.stack([fit_image(image, size, channels, mode) for image in images])
        mean = torch.tensor(self.card["mean"], device=self.device)
        std = torch.tensor(self.card["std"], device=self.device)
        return to_model_input(torch.from_numpy(array).to(self.device), mean, std)

    @torch.no_grad()
    def outputs(self, images: list[Image.Image],
                features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits, penultimate features or None) of the images."""
        with features_of(self.model) as captured:
            logits = self.model(self.to_batch(images)).float().cpu().numpy()
        feats = captured[0].cpu().numpy() if features and captured else None
        return logits, feats

    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        """Calibrated class probabilities: softmax(logits / the run's temperature)."""
        logits, _ = self.outputs(images)
        return softmax(logits, self.temperature)

    def top_k(self, images: list[Image.Image], k: int = 5) -> list[list[dict]]:
        """For each image, the k most likely classes as [{label, prob}], most likely first."""
        return [row["top"] for row in self.predict(images, k)]

    def predict(self, images: list[Image.Image], k: int = 5) -> list[dict]:
        """For each image {top: [{label, prob}], unknown, score}: `unknown` is True when the
        run's detector finds it like none of the training images (score under the
        threshold); False, with score None, for a run without a detector."""
        needs = self.detector is not None and self.detector.needs_features
        logits, feats = self.outputs(images, features=needs)
        probs = softmax(logits, self.temperature)
        scores = self.detector.scores(logits, feats) if self.detector else None
        k = min(k, len(self.classes))
        rows = []
        for index, row in enumerate(probs):
            order = np.argsort(-row)[:k]
            score = None if scores is None else float(scores[index])
            rows.append({"top": [{"label": self.classes[i], "prob": float(row[i])}
                                 for i in order],
                         "unknown": bool(score is not None and score < self.detector.threshold),
                         "score": score})
        return rows


def load_model(run_ref: str, store: Store | None = None, *, checkpoint: str = "best",
               device: str = "cpu") -> LoadedModel:
    store = store or Store()
    run = store.get_run(run_ref)
    if run is None:
        raise ModelUnavailable(f"There is no run {run_ref!r}; see `python -m core runs list`.")
    folder = runs_dir() / run["run_id"]
    weights = weights_file(folder, checkpoint)
    if not (folder / MODEL_CARD).exists() or not weights.exists():
        raise ModelUnavailable(
            f"Run {run['name']} has no trained model yet ({run['status']}); "
            "wait for its first epoch to finish or pick another run.")
    try:
        card = read_model_card(folder)
        model = create_model(card.get("spec") or card["model"], in_chans=card["in_chans"],
                             num_classes=len(card["classes"]), image_size=card["image_size"])
        model.load_state_dict(load_weights(weights))
    except Exception as error:  # a damaged file must give a message, not a traceback
        raise ModelUnavailable(
            f"The checkpoint of run {run['name']} could not be loaded ({error}). "
            "Its files may be damaged; train the run again.") from error
    torch_device = torch.device(device)
    model = model.to(torch_device).eval()
    return LoadedModel(run["run_id"], model, card, torch_device, load_detector(folder, card))


def load_detector(folder: Path, card: dict) -> Detector | None:
    """The run's unknown-input detector from model.json (and its feature bank for kNN); None
    for runs trained before it, or whose bank is missing."""
    rule = card.get("unknown")
    if not rule:
        return None
    bank = None
    if rule["method"] == "knn":
        path = folder / (rule.get("bank") or "")
        if not rule.get("bank") or not path.is_file():
            return None
        bank = np.load(path).astype(np.float32)
    return Detector(rule["method"], float(rule["threshold"]), float(card.get("temperature") or 1.0),
                    bank)


def open_image(source: str | Path | bytes, draft_to: int | None = None) -> Image.Image:
    """Decode an image file or bytes with the importer's checks (a JPEG at reduced size with
    `draft_to`, as the cache does); ValueError says what is wrong."""
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ValueError(f"There is no image file at {source}.")
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        return decode_image(data, MAX_PIXELS, draft_to)
    except ImageRejected as error:
        name = "the upload" if isinstance(source, bytes) else str(source)
        raise ValueError(f"Cannot classify {name}: {error}") from None
