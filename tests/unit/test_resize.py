"""Resize modes (crop, squish, pad): what each does, the default from the aspect ratios, and
the same tensors in training and in prediction for every mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import TrainConfig
from core.data.build import DatasetBuilder
from core.data.cache import cache_path, dataset_resize, load_cache
from core.data.dataset import load_dataset
from core.data.loader import to_model_input
from core.data.transforms import RESIZE_MODES, default_resize, fit_image
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.serving import package_predict
from core.serving.infer import load_model
from core.store import Store


def banded(width: int, height: int) -> Image.Image:
    """Red outer thirds around a green middle third, along the (horizontal) long side."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    pixels[:, width // 3: 2 * width // 3] = (0, 255, 0)
    return Image.fromarray(pixels)


def test_crop_keeps_the_centre_squish_keeps_everything_pad_letterboxes() -> None:
    image = banded(60, 20)
    cropped = fit_image(image, 20, 3, "crop")
    assert (cropped == (0, 255, 0)).all()
    squished = fit_image(image, 20, 3, "squish")
    assert squished[:, 0, 0].min() > 200 and squished[:, 10, 1].min() > 200  # red ends kept
    padded = fit_image(image, 30, 3, "pad")  # 60×20 → 30×10, centred: rows 10..19
    assert (padded[:10] == 0).all() and (padded[20:] == 0).all()
    assert padded[15, 0, 0] > 200 and padded[15, 15, 1] > 200


def test_an_unknown_mode_says_which_exist() -> None:
    with pytest.raises(ValueError, match="crop, squish, pad"):
        fit_image(banded(30, 10), 10, 3, "stretch")


@pytest.mark.parametrize(("sizes", "mode"), [
    ([(32, 32), (40, 36)], "crop"), ([(48, 32)] * 3, "squish"), ([(90, 30), (100, 30)], "pad")])
def test_the_default_mode_follows_the_median_aspect_ratio(sizes, mode: str) -> None:
    chosen, reason = default_resize(sizes)
    assert chosen == mode and reason.startswith(f"resize {mode}: ")


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_the_exported_predict_script_resizes_exactly_as_the_project(mode: str) -> None:
    for image in (banded(60, 20), banded(17, 41), banded(24, 24)):
        assert np.array_equal(package_predict.fit(image, 16, 3, mode),
                              fit_image(image, 16, 3, mode)), mode


def long_images_dataset(name: str = "long") -> None:
    """Two classes of 48×24 images: a bright block at the left end or at the right end."""
    rng = np.random.default_rng(0)
    builder = DatasetBuilder(name, ["left", "right"], origin="test")
    for index in range(40):
        pixels = rng.integers(0, 60, (24, 48, 3)).astype(np.uint8)
        label = index % 2
        (pixels[:, 2:10] if label == 0 else pixels[:, 38:46])[:] = 220
        builder.add(Image.fromarray(pixels), label, f"{index}.png")
    builder.finish(val=0.25, test=0.25, seed=0)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_each_mode_gives_identical_tensors_in_training_and_prediction(
        studio_home: Path, mode: str) -> None:
    long_images_dataset()
    store = Store()
    run_id = new_run(TrainConfig(data="long", model="tiny-cnn", epochs=1, batch_size=8,
                                 device="cpu", image_size=16, resize=mode), store,
                     status="running")
    result = execute_run(run_id, store)
    assert result["resize"] == mode
    loaded = load_model(run_id, store)
    assert loaded.card["resize"] == mode  # export and serving read it here
    dataset = load_dataset("long")
    cached = load_cache(dataset, 16, mode=mode)  # what training and validation read
    mean, std = torch.tensor(loaded.card["mean"]), torch.tensor(loaded.card["std"])
    for index in dataset.indices("val"):
        with Image.open(dataset.folder / dataset.items[index].file) as image:
            predicted = loaded.to_batch([image])  # the Classify page's and predict's path
        trained = to_model_input(torch.from_numpy(np.array(cached[index:index + 1])), mean, std)
        assert torch.equal(predicted, trained), (mode, index)


def test_modes_have_their_own_cache_unless_every_image_is_square(studio_home: Path) -> None:
    long_images_dataset()
    dataset = load_dataset("long")
    paths = {cache_path(dataset, 16, mode) for mode in RESIZE_MODES}
    assert len(paths) == 3
    assert dataset_resize(dataset) == ("pad", dataset_resize(dataset)[1])  # 2:1 → pad
    assert dataset_resize(dataset, "crop")[0] == "crop"
    builder = DatasetBuilder("squares", ["a", "b"], origin="test")
    for index in range(8):
        builder.add(Image.new("RGB", (20, 20), (index * 20, 0, 0)), index % 2, f"{index}.png")
    squares = builder.finish(val=0.25, test=0.25, seed=0)
    assert len({cache_path(squares, 16, mode) for mode in RESIZE_MODES}) == 1
