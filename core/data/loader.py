"""Batches drawn on the training device from the uint8 cache, augmented there.

The whole split sits on the device as uint8 N×H×W×C (4× smaller than float32,
and it is the decode that is slow, not the copy). A batch is an index gather;
flip, pad-and-crop, colour jitter and normalisation are batched tensor ops, so
no per-image Python runs in the training loop. When the split does not fit in
device memory it stays in (pinned) host memory and each batch is copied over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DEVICE_MEMORY_SHARE = 0.4  # keep the cached split on the GPU only if it takes under this share
# Pixel values in one inference batch on the CPU, at most: its activations are process memory
# (a 512-image batch of tiny-cnn at 96 px holds 600 MB in its first conv's output alone).
EVAL_BATCH_VALUES = 1 << 21


@dataclass
class Augment:
    flip: bool = True  # random horizontal flip
    pad_crop: int = 2  # reflect-pad by this many pixels, then crop back at a random offset
    jitter: float = 0.0  # brightness and contrast factors drawn from [1 - j, 1 + j]
    # (rank, ranks): this process holds share `rank` of `ranks` equal shares of every batch
    # (torchrun). It draws the random numbers of the whole batch and keeps its share's, so the
    # ranks together augment each image exactly as one process would.
    share: tuple[int, int] = (0, 1)

    def is_off(self) -> bool:
        return not self.flip and self.pad_crop == 0 and self.jitter == 0


class DeviceSplit:
    """One split (images + labels) held where batches are cheapest to draw; `images` may be
    a `CacheRows` reader, for a split larger than the memory it may take (see split_of)."""

    def __init__(self, images: np.ndarray | CacheRows, labels: np.ndarray,
                 device: torch.device) -> None:
        self.device = device
        self.sample_weights: torch.Tensor | None = None  # set: shuffling draws by them instead
        self.labels = torch.as_tensor(labels, dtype=torch.long, device=device)
        if isinstance(images, CacheRows):
            self.images = images  # read batch by batch from the cache file
            return
        host = torch.from_numpy(np.ascontiguousarray(images))
        if device.type == "cuda" and not fits_on_device(host.nbytes, device):
            self.images = host.pin_memory()
        else:
            self.images = host.to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def inference_batch(self, most: int) -> int:
        """The batch to run this split through the model without gradients: `most`, fewer on
        the CPU for large images (at most EVAL_BATCH_VALUES pixel values a batch)."""
        if self.device.type != "cpu":
            return most
        per_image = int(np.prod(self.images.shape[1:]))
        return max(1, min(most, EVAL_BATCH_VALUES // max(1, per_image)))

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                drop_last: bool = False, shard: tuple[int, int] = (0, 1),
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 N×H×W×C on the device, labels) batches. `drop_last`: leave out the
        last, partial batch, unless the split is smaller than one batch (then it is the only
        one, whole). `shard=(rank, ranks)`: only that rank's contiguous share of each batch
        (data-parallel training: every rank draws the same order from an identically seeded
        generator, so the shares are disjoint)."""
        rank, ranks = shard
        n = len(self)
        if shuffle and self.sample_weights is not None:  # a balanced sampler, with replacement
            order = torch.multinomial(self.sample_weights.to(self.images.device), n,
                                      replacement=True, generator=generator)
        elif shuffle:
            order = torch.randperm(n, device=self.images.device, generator=generator)
        else:
            order = torch.arange(n, device=self.images.device)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size]
            if ranks > 1:
                index = index.tensor_split(ranks)[rank]
            images = self.images[index].to(self.device, non_blocking=True)
            yield images, self.labels[index.to(self.device)]


class CacheRows:
    """Some rows of a cache `.npy` file, read from the file on demand: `rows[index_tensor]` is
    a uint8 tensor of those images. Reads go through the page cache, so what this process
    holds is one batch, never the split: a dataset larger than memory still trains."""

    def __init__(self, cache: np.memmap, rows: np.ndarray) -> None:
        self.path, self.offset = str(cache.filename), int(cache.offset)
        self.image_shape = tuple(cache.shape[1:])
        self.row_bytes = int(np.prod(self.image_shape))
        self.rows = np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *self.image_shape)  # as the array it stands for
        self.device = torch.device("cpu")
        self.fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        picks = self.rows[index.cpu().numpy()]
        out = np.empty((len(picks), *self.image_shape), dtype=np.uint8)
        for slot, row in enumerate(picks.tolist()):
            got = os.preadv(self.fd, [out[slot].data.cast("B")],
                            self.offset + row * self.row_bytes)
            if got != self.row_bytes:
                raise OSError(f"the cache file {self.path} is shorter than its header says; "
                              "delete it and it is rebuilt")
        return torch.from_numpy(out)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            os.close(self.fd)


def memory_budget() -> int:
    """Bytes the cached splits may take in memory: CNN_STUDIO_MEMORY_CAP (bytes, or with a
    K/M/G suffix) when set, else half the memory available now (all of it, if unknown)."""
    cap = os.environ.get("CNN_STUDIO_MEMORY_CAP", "").strip().upper()
    if cap:
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(cap[-1:], 1)
        try:
            return int(float(cap.rstrip("KMGB") if scale > 1 else cap) * scale)
        except ValueError:
            raise ValueError(f"CNN_STUDIO_MEMORY_CAP={cap!r} is not a size such as 2G or "
                             "500M.") from None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62


def in_memory(cache: np.ndarray, rows: int) -> bool:
    """Whether `rows` images of `cache` fit the memory budget (else they are read per batch)."""
    return rows * int(np.prod(cache.shape[1:])) <= memory_budget()


def split_images(cache: np.ndarray, index: np.ndarray, stream: bool) -> np.ndarray | CacheRows:
    """The split's images: copied into memory, or (`stream`, a memory-mapped cache) a reader."""
    if stream and isinstance(cache, np.memmap):
        return CacheRows(cache, index)
    return cache[index]


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < DEVICE_MEMORY_SHARE * free


def to_model_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   augment: Augment | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 N×H×W×C → normalised float N×C×H×W (channels_last in memory), augmented if asked."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    if augment is not None and not augment.is_off():
        x = apply_augment(x, augment, generator)
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)


def apply_augment(x: torch.Tensor, augment: Augment,
                  generator: torch.Generator | None) -> torch.Tensor:
    if augment.flip:
        x = random_flip(x, generator, augment.share)
    if augment.pad_crop > 0:
        x = random_pad_crop(x, augment.pad_crop, generator, augment.share)
    if augment.jitter > 0:
        x = random_jitter(x, augment.jitter, generator, augment.share)
    return x


Share = tuple[int, int]


def uniform(n: int, like: torch.Tensor, generator: torch.Generator | None,
            share: Share = (0, 1)) -> torch.Tensor:
    """n uniform numbers: share `rank` of the n * ranks the whole batch draws."""
    rank, ranks = share
    return torch.rand(n * ranks, device=like.device, generator=generator)[rank * n:(rank + 1) * n]


def random_flip(x: torch.Tensor, generator: torch.Generator | None,
                share: Share = (0, 1)) -> torch.Tensor:
    flip = uniform(len(x), x, generator, share) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_pad_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None,
                    share: Share = (0, 1)) -> torch.Tensor:
    """Shift each image by up to `pad` pixels each way, filling the edge by reflection."""
    n, c, h, w = x.shape
    pad = min(pad, h - 1, w - 1)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = (uniform(n, x, generator, share) * (2 * pad + 1)).long()
    dx = (uniform(n, x, generator, share) * (2 * pad + 1)).long()
    rows = (torch.arange(h, device=x.device) + dy[:, None]).view(n, 1, h, 1)
    rows = padded.gather(2, rows.expand(n, c, h, w + 2 * pad))
    cols = (torch.arange(w, device=x.device) + dx[:, None]).view(n, 1, 1, w)
    return rows.gather(3, cols.expand(n, c, h, w))


def random_jitter(x: torch.Tensor, strength: float, generator: torch.Generator | None,
                  share: Share = (0, 1)) -> torch.Tensor:
    n = len(x)
    brightness = 1 + (uniform(n, x, generator, share) * 2 - 1) * strength
    contrast = 1 + (uniform(n, x, generator, share) * 2 - 1) * strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(-1, 1, 1, 1) + mean
    return (x * brightness.view(-1, 1, 1, 1)).clamp_(0, 1)


STATS_VALUES = 32_000_000  # pixel values read for the normalisation statistics, at most
STATS_CHUNK = 4_000_000  # of them read into memory at once (uint8)


def stats_sample(index: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """The part of `index` channel_stats reads: every step-th, as channel_stats itself steps
    (so its figures are unchanged), further apart for large images (at most STATS_VALUES
    pixel values, so photo-sized data never loads a whole split for two numbers)."""
    most = max(1, STATS_VALUES // int(np.prod(cache.shape[1:])))  # images within the budget
    step = max(1, len(index) // 10_000, -(-len(index) // most))
    return index[::step]


def channel_stats(images: np.ndarray, sample: int = 10_000, index: np.ndarray | None = None,
                  ) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units, from up to `sample` images (of `images[index]`
    when given: `images` may be the memory-mapped cache, it is read STATS_CHUNK values at a
    time). Per-channel histograms of the uint8 values make the sums exact, so the figures are
    the float32 whole-array computation's to ~1e-7 without ever holding float copies."""
    rows = np.arange(len(images)) if index is None else np.asarray(index)
    rows = rows[::max(1, len(rows) // sample)]
    channels = images.shape[-1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    per_chunk = max(1, STATS_CHUNK // max(1, int(np.prod(images.shape[1:]))))
    for start in range(0, len(rows), per_chunk):
        chunk = np.asarray(images[rows[start:start + per_chunk]]).reshape(-1, channels)
        for channel in range(channels):
            counts[channel] += np.bincount(chunk[:, channel], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255
    total = np.maximum(counts.sum(axis=1), 1).astype(np.float64)
    mean = counts @ values / total
    var = counts @ values ** 2 / total - mean ** 2
    std = np.sqrt(np.maximum(var, 0)).clip(min=1e-3)
    return [float(v) for v in mean], [float(v) for v in std]


def augment_images(images: np.ndarray, augment: Augment, seed: int = 0) -> np.ndarray:
    """uint8 N×H×W×C → the same images as training's augmentation would change them (on the
    CPU), for a preview of what the model sees."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255)
    if not augment.is_off():
        x = apply_augment(x, augment, torch.Generator().manual_seed(seed))
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
