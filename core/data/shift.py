"""Whether a random shift (reflect-pad, then crop back at a random offset) should augment the
training images, decided from the data.

A shift teaches a network that an object may sit a few pixels away from where it was seen.
That helps when the test images are framed loosely (photos), and costs accuracy when every
image is registered the same way: digits and Fashion-MNIST are centred and size-normalised,
so their test images never move and a shifted training image is one the test never shows
(measured: bench/RESULTS.md, "Defaults against the seed recipe").

Registration is read from the flip decision's pixel probe (core.data.mirror): classifying
16×16 grayscale images by their nearest neighbours pixel by pixel only works when objects are
at the same place in every image. Its hit rate, as a share of the way from chance to perfect,
measured 0.75 on Fashion-MNIST, 0.97 on scikit-learn's digits and 0.45 on the shapes demo
(shapes drawn anywhere); pixel kNN on loosely framed photos is near chance (CIFAR-10 about
0.25 in the literature). Shifts stay off from REGISTERED_CUTOFF up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core.data.dataset import Dataset
from core.data.mirror import FlipDecision, dataset_flip_decision

REGISTERED_CUTOFF = 0.6


@dataclass
class ShiftDecision:
    pad: int  # pixels; 0: no shift
    reason: str  # one sentence for the Datasets and Train pages
    registration: float | None = None  # the pixel probe's hit rate, chance 0, perfect 1

    def to_dict(self) -> dict:
        return asdict(self)


def shift_pixels(image_size: int) -> int:
    """The shift for images of `image_size` pixels: 2 at 32 px, 1 px per 16 px, at least 1."""
    return max(1, round(image_size / 16))


def registration(flip: FlipDecision, num_classes: int) -> float | None:
    """The pixel probe's hit rate scaled from chance (0) to perfect (1); None untested."""
    if flip.probe_acc is None or num_classes < 2:
        return None
    chance = 1 / num_classes
    return (flip.probe_acc - chance) / (1 - chance)


def decide_shift(flip: FlipDecision, num_classes: int, image_size: int) -> ShiftDecision:
    """The shift decision from the flip decision's probe of the same images."""
    score = registration(flip, num_classes)
    pad = shift_pixels(image_size)
    if score is None:
        return ShiftDecision(pad, f"shift {pad} px: too few images to test how they are "
                                  "framed; most photos are framed loosely")
    if score >= REGISTERED_CUTOFF:
        return ShiftDecision(0, f"shift off: the images are registered (a pixel-by-pixel "
                                f"comparison finds the class {flip.probe_acc:.0%} of the "
                                "time), so test images sit where the training images do",
                             score)
    return ShiftDecision(pad, f"shift {pad} px: objects sit at different places from image "
                              f"to image (a pixel-by-pixel comparison finds the class only "
                              f"{flip.probe_acc:.0%} of the time)", score)


def dataset_shift_decision(dataset: Dataset, image_size: int) -> ShiftDecision:
    """The dataset's shift decision (the flip probe is computed once and kept)."""
    return decide_shift(dataset_flip_decision(dataset), len(dataset.classes), image_size)


def resolve_shift(setting: int | None, dataset: Dataset, image_size: int) -> tuple[int, str]:
    """The shift a run trains with and why: a number as given, unset (auto) from the data."""
    if setting is not None:
        return setting, (f"shift {setting} px: set by hand" if setting else
                         "shift off: set by hand")
    decision = dataset_shift_decision(dataset, image_size)
    return decision.pad, decision.reason
