"""Atomic writes survive a power loss: every temp-file-then-rename (configs, manifests,
checkpoints, caches, the built dataset folder) fsyncs the file before the rename and the
folder after it, so the rename itself is on disk (core.durable)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.build import DatasetBuilder
from core.data.cache import build_cache, write_cache
from core.data.dataset import MANIFEST, load_dataset
from core.durable import replace_durably, write_json_atomic
from core.training.checkpoint import save_checkpoint


@pytest.fixture
def disk_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """("fsync file" | "fsync folder" | "rename", path), in order, for every fsync and rename."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd: int) -> None:
        kind = "fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file"
        events.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def renamed(real):
        def rename(source, target, *args, **kwargs):
            real(source, target, *args, **kwargs)
            events.append(("rename", os.path.realpath(target)))
        return rename

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", renamed(real_replace))
    monkeypatch.setattr(os, "rename", renamed(real_rename))  # Path.rename calls os.rename
    return events


def assert_durable(events: list[tuple[str, str]], target: Path, *, file: bool = True) -> None:
    """`target` was renamed into place, its bytes fsynced before, its folder fsynced after."""
    target = Path(os.path.realpath(target))
    renames = [i for i, event in enumerate(events) if event == ("rename", str(target))]
    assert renames, f"{target.name} was not renamed into place: {events}"
    last = renames[-1]
    after = events[last + 1:]
    assert ("fsync folder", str(target.parent)) in after, f"no folder fsync after {events}"
    if file:
        assert any(kind == "fsync file" for kind, _ in events[:last]), "file bytes not fsynced"


def test_the_helper_fsyncs_the_folder_after_the_rename(tmp_path, disk_events) -> None:
    (tmp_path / "new").write_text("x")
    replace_durably(tmp_path / "new", tmp_path / "old")
    assert disk_events == [("rename", str((tmp_path / "old").resolve())),
                           ("fsync folder", str(tmp_path.resolve()))]


def test_json_configs_and_manifests(tmp_path, disk_events) -> None:
    write_json_atomic(tmp_path / "config.json", {"lr": 0.1})
    assert_durable(disk_events, tmp_path / "config.json")


def test_checkpoints(tmp_path, disk_events) -> None:
    save_checkpoint(tmp_path, "last", torch.nn.Linear(2, 2), state={"epoch": 1})
    assert_durable(disk_events, tmp_path / "last.safetensors")
    assert_durable(disk_events, tmp_path / "last.json")


def test_the_built_dataset_folder_and_its_caches(studio_home, disk_events) -> None:
    from PIL import Image

    builder = DatasetBuilder("pets", ["cat", "dog"])
    for index in range(8):
        builder.add(Image.new("RGB", (8, 8), (30 * index, 0, 0)), index % 2)
    dataset = builder.finish(val=0.25, test=0.25)
    assert_durable(disk_events, dataset.folder, file=False)  # a folder, renamed whole
    assert_durable(disk_events, builder.tmp / MANIFEST)  # written inside it just before

    dataset = load_dataset("pets")
    assert_durable(disk_events, build_cache(dataset, 8))
    assert_durable(disk_events, write_cache(dataset, 4, np.zeros((8, 4, 4, 3), np.uint8)))
