"""Single-image latency of a trained run: what the Classify page waits for per prediction.

The model is loaded once (as the page's cache does), then one image goes through
LoadedModel.top_k — preprocessing, forward pass, softmax — `repeats` times after `warmup`
untimed calls. The image is one of the run's validation images when the dataset is still
there (random pixels at the model's input size otherwise), so the resize is the real one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from core.serving.export import validation_images
from core.serving.infer import LoadedModel, load_model
from core.store import Store


def single_image_latency(run_ref: str, repeats: int = 100, *, warmup: int = 10, k: int = 5,
                         image: Image.Image | None = None, store: Store | None = None,
                         device: str = "cpu") -> dict:
    """Milliseconds per single-image top-k call: p50, p90, p99, mean, min, max.

    `image` (say, a camera-sized photo, whose resize then counts) defaults to sample_image."""
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be at least 1 and warmup at least 0.")
    loaded = load_model(run_ref, store, device=device)
    image = image if image is not None else sample_image(loaded)
    for _ in range(warmup):
        loaded.top_k([image], k)
    times = np.empty(repeats)
    for index in range(repeats):
        start = time.perf_counter()
        loaded.top_k([image], k)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()  # top_k copies to the CPU already; be explicit anyway
        times[index] = (time.perf_counter() - start) * 1000
    return {
        "run_id": loaded.run_id, "model": loaded.card["model"],
        "image_size": loaded.card["image_size"], "input_size": list(image.size),
        "device": str(loaded.device),
        "threads": torch.get_num_threads(), "repeats": repeats, "warmup": warmup,
        "p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
        "p99_ms": float(np.percentile(times, 99)), "mean_ms": float(times.mean()),
        "min_ms": float(times.min()), "max_ms": float(times.max()),
    }


def sample_image(loaded: LoadedModel) -> Image.Image:
    """A validation image of the run's dataset, or seeded random pixels of the input size."""
    card = loaded.card
    images = validation_images(card, 1)
    if images is None or not len(images):
        rng = np.random.default_rng(0)
        shape = (card["image_size"], card["image_size"], card["in_chans"])
        images = rng.integers(0, 256, (1, *shape), dtype=np.uint8)
    pixels = images[0]
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def repeated_ms(call: Callable[[], object], *, repeats: int = 7, budget_s: float = 0.5,
                clock: Callable[[], float] = time.perf_counter) -> tuple[object, dict]:
    """What one call of `call` waits for, as the median of several: one untimed warm-up call,
    then up to `repeats` timed calls (fewer once `budget_s` is spent; at least one). Returns the
    warm-up's result and {median_ms, low_ms, high_ms, calls}: one measurement alone ranged
    from 3 to 312 ms on one model (a cold cache, another process)."""
    result = call()
    times: list[float] = []
    spent = 0.0
    while len(times) < max(1, repeats) and (not times or spent < budget_s):
        start = clock()
        call()
        times.append((clock() - start) * 1000)
        spent += times[-1] / 1000
    return result, {"median_ms": float(np.median(times)), "low_ms": float(min(times)),
                    "high_ms": float(max(times)), "calls": len(times)}


def latency_text(timing: dict) -> str:
    """"4.2 ms (median of 7, 3.9–5.1 ms)"."""
    if timing["calls"] == 1:
        return f"{timing['median_ms']:.1f} ms (one call)"
    return (f"{timing['median_ms']:.1f} ms (median of {timing['calls']}, "
            f"{timing['low_ms']:.1f}–{timing['high_ms']:.1f} ms)")
