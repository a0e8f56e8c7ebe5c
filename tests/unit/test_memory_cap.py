"""A dataset larger than memory trains from the cache file, batch by batch, with the very same
batches as the in-memory path (CNN_STUDIO_MEMORY_CAP simulates the small machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core.data.loader
from core.data.cache import load_cache
from core.data.dataset import load_dataset
from core.data.loader import CacheRows, DeviceSplit, memory_budget, split_images, stats_sample
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
