"""Loss, accuracy, top-5 and the confusion matrix of a model on a split."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from core.data.loader import DeviceSplit, to_model_input


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: DeviceSplit, mean: torch.Tensor, std: torch.Tensor,
             *, num_classes: int, batch_size: int = 512, autocast=contextlib.nullcontext,
             tta_flip: bool = False) -> dict:
    """Metrics of `model` on `split`; sums stay on the device until the end (one sync)."""
    was_training = model.training
    model.eval()
    device = split.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    top5 = torch.zeros((), device=device, dtype=torch.long)
    confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.long)
    for images, labels in split.batches(split.inference_batch(batch_size), shuffle=False):
        x = to_model_input(images, mean, std)
        with autocast():
            logits = model(x)
            if tta_flip:
                logits = (logits + model(x.flip(3))) / 2
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum")
        predicted = logits.argmax(1)
        correct += (predicted == labels).sum()
        k = min(5, num_classes)
        top5 += (logits.topk(k, dim=1).indices == labels[:, None]).any(1).sum()
        confusion += torch.bincount(labels * num_classes + predicted, minlength=num_classes ** 2)
    model.train(was_training)
    n = max(1, len(split))
    return {
        "loss": loss_sum.item() / n,
        "acc": correct.item() / n,
        "top5": top5.item() / n,
        "confusion": confusion.view(num_classes, num_classes).cpu().numpy(),
    }


def per_class_metrics(confusion: np.ndarray, classes: list[str]) -> list[dict]:
    """Accuracy (recall), precision and F1 per class from a confusion matrix (rows: true)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_counts = confusion.sum(axis=1)
    predicted_counts = confusion.sum(axis=0)
    rows = []
    for index, name in enumerate(classes):
        hits = confusion[index, index]
        recall = hits / true_counts[index] if true_counts[index] else 0.0
        precision = hits / predicted_counts[index] if predicted_counts[index] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "support": int(true_counts[index]), "accuracy": recall,
                     "precision": precision, "f1": f1})
    return rows
