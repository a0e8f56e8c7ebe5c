"""A dataset larger than memory trains from the cache file, batch by batch, with the very same
batches as the in-memory path (CNN_STUDIO_MEMORY_CAP simulates the small machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core.data.loader
from core.data.cache import load_cache
from core.data.dataset import load_dataset
from core.data.loader import (
    CacheRows,
    DeviceSplit,
    channel_stats,
    memory_budget,
    split_images,
    stats_sample,
)
from core.training.checkpoint import load_weights
from core.training.run_files import weights_file
from core.workspace import runs_dir


def test_cache_rows_read_the_same_images_as_the_memory_map(shapes_workspace):
    cache = load_cache(load_dataset("shapes"), 20)
    index = np.array([5, 0, 299, 17, 17, 3])
    rows = split_images(cache, index, stream=True)
    assert isinstance(rows, CacheRows) and len(rows) == len(index)
    picks = torch.tensor([2, 0, 5, 1])
    assert torch.equal(rows[picks], torch.from_numpy(np.array(cache[index[picks.numpy()]])))
    split = DeviceSplit(rows, np.arange(len(index)), torch.device("cpu"))
    batches = list(split.batches(4, shuffle=False))
    assert torch.equal(torch.cat([x for x, _ in batches]), torch.from_numpy(cache[index]))


def test_the_memory_cap_reads_sizes_and_refuses_nonsense(monkeypatch):
    for text, expected in (("2G", 2 << 30), ("500M", 500 << 20), ("64k", 64 << 10),
                           ("1000", 1000), ("1.5G", 3 << 29)):
        monkeypatch.setenv("CNN_STUDIO_MEMORY_CAP", text)
        assert memory_budget() == expected
    monkeypatch.setenv("CNN_STUDIO_MEMORY_CAP", "lots")
    with pytest.raises(ValueError, match="such as 2G"):
        memory_budget()


def test_statistics_sample_is_unchanged_for_small_images_and_bounded_for_photos():
    small = np.zeros((1, 28, 28, 1), np.uint8)
    index = np.arange(56_000)
    assert np.array_equal(stats_sample(index, small), index[::5])  # as channel_stats steps
    photo = np.zeros((1, 224, 224, 3), np.uint8)
    assert len(stats_sample(index, photo)) * 224 * 224 * 3 <= core.data.loader.STATS_VALUES


def test_a_run_over_the_memory_cap_trains_from_the_file_exactly_as_in_memory(
        shapes_workspace, train_shapes_run, monkeypatch):
    store = shapes_workspace
    in_memory = train_shapes_run(store, name="in-memory", seed=3)
    reads = []
    real = CacheRows.__getitem__
    monkeypatch.setattr(CacheRows, "__getitem__",
                        lambda self, index: reads.append(len(index)) or real(self, index))
    monkeypatch.setenv("CNN_STUDIO_MEMORY_CAP", "1K")  # far below the 300 images' cache
    streamed = train_shapes_run(store, name="streamed", seed=3)
    assert reads, "the capped run never read from the cache file"
    ours, theirs = (load_weights(weights_file(runs_dir() / run, "last"))
                    for run in (streamed, in_memory))
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def old_channel_stats(images: np.ndarray, sample: int = 10_000) -> tuple[list[float], list[float]]:
    """The statistics as they were computed before streaming: one float32 copy of the sample."""
    pixels = np.asarray(images[::max(1, len(images) // sample)], dtype=np.float32) / 255
    std = pixels.std(axis=(0, 1, 2)).clip(min=1e-3)
    return [float(v) for v in pixels.mean(axis=(0, 1, 2))], [float(v) for v in std]


def exact_channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    pixels = np.asarray(images, dtype=np.float64) / 255
    std = pixels.std(axis=(0, 1, 2)).clip(min=1e-3)
    return [float(v) for v in pixels.mean(axis=(0, 1, 2))], [float(v) for v in std]


def test_streamed_statistics_equal_the_whole_array_computation(monkeypatch, tmp_path):
    rng = np.random.default_rng(4)
    small = rng.integers(0, 256, (61, 9, 7, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (50, 28, 28, 1), dtype=np.uint8)
    monkeypatch.setattr(core.data.loader, "STATS_CHUNK", 500)  # many chunks, a partial last one
    for images in (small, gray):
        for sample in (10_000, 20):  # all images; every third
            ours = channel_stats(images, sample=sample)
            assert np.allclose(ours, old_channel_stats(images, sample=sample), rtol=0, atol=1e-6)
    # Larger, the old float32 sums drift (2e-5 here); the streamed ones are exact.
    large = rng.integers(0, 256, (301, 13, 11, 3), dtype=np.uint8)
    large[..., 2] = rng.integers(40, 60, large.shape[:3])  # a narrow channel
    assert np.allclose(channel_stats(large), exact_channel_stats(large), rtol=0, atol=1e-12)
    assert np.allclose(channel_stats(large), old_channel_stats(large), rtol=0, atol=1e-4)
    np.save(tmp_path / "cache.npy", large)
    cache = np.load(tmp_path / "cache.npy", mmap_mode="r")
    index = np.sort(rng.choice(len(large), 120, replace=False))
    assert np.allclose(channel_stats(cache, index=index), exact_channel_stats(large[index]),
                       rtol=0, atol=1e-12)


def test_inference_batches_on_the_cpu_bound_the_pixels_not_small_images(tmp_path):
    small = DeviceSplit(np.zeros((4, 28, 28, 1), np.uint8), np.zeros(4), torch.device("cpu"))
    assert small.inference_batch(512) == 512  # Fashion-MNIST evaluates as before
    photos = np.zeros((3, 96, 96, 3), np.uint8)
    np.save(tmp_path / "cache.npy", photos)
    cache = np.load(tmp_path / "cache.npy", mmap_mode="r")
    for images in (photos, CacheRows(cache, np.arange(3))):
        split = DeviceSplit(images, np.zeros(3), torch.device("cpu"))
        batch = split.inference_batch(512)
        assert batch * 96 * 96 * 3 <= core.data.loader.EVAL_BATCH_VALUES < (batch + 1) * 96 * 96 * 3
