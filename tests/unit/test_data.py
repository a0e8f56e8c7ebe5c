"""Built-in datasets, the stratified split, the decode-once cache and the device loader."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.data.cache import cache_path, default_image_size, load_cache
from core.data.catalog import add_demo
from core.data.dataset import DatasetError, load_dataset
from core.data.demo import DEMOS, FASHION_CLASSES, FASHION_MNIST_DIR, fashion_mnist_arrays
from core.data.loader import (
    Augment,
    DeviceSplit,
    apply_augment,
    channel_stats,
    random_flip,
    random_pad_crop,
    to_model_input,
)
from core.data.split import stratified_split
from core.data.transforms import fit_image

CPU = torch.device("cpu")

# Split ------------------------------------------------------------------------------------


def labels_for(counts: list[int]) -> list[int]:
    return [label for label, count in enumerate(counts) for _ in range(count)]


def test_split_is_reproducible_for_a_seed_and_differs_between_seeds() -> None:
    labels = labels_for([40, 25, 31])
    classes = ["a", "b", "c"]
    first = stratified_split(labels, classes, val=0.2, test=0.1, seed=7)
    assert first == stratified_split(labels, classes, val=0.2, test=0.1, seed=7)
    assert first != stratified_split(labels, classes, val=0.2, test=0.1, seed=8)


def test_split_puts_every_class_in_every_split_in_proportion() -> None:
    labels = labels_for([40, 5, 4])  # class 2 has the fewest images a three-way split allows
    splits = stratified_split(labels, ["a", "b", "c"], val=0.1, test=0.1, seed=0)
    table = Counter(zip(labels, splits, strict=True))
    for label in range(3):
        for split in ("train", "val", "test"):
            assert table[label, split] >= 1, (label, split)
    assert (table[0, "train"], table[0, "val"], table[0, "test"]) == (32, 4, 4)
    assert len(splits) == len(labels)


def test_split_without_a_test_fraction_makes_no_test_split() -> None:
    splits = stratified_split(labels_for([10, 10]), ["a", "b"], val=0.2, test=0.0, seed=0)
    assert Counter(splits) == {"train": 16, "val": 4}


def test_class_too_small_to_split_is_refused_with_a_way_out() -> None:
    with pytest.raises(DatasetError) as error:
        stratified_split(labels_for([20, 3]), ["cats", "dogs"], val=0.1, test=0.1, seed=0)
    message = str(error.value)
    assert "'dogs' (3)" in message and "at least 4" in message
    assert "add images" in message and "cats" not in message


def test_one_class_is_refused_because_a_classifier_needs_two() -> None:
    with pytest.raises(DatasetError, match="at least two classes"):
        stratified_split(labels_for([20, 0]), ["cats", "dogs"], val=0.1, test=0.1, seed=0)


def test_fractions_leaving_nothing_to_train_on_are_refused() -> None:
    with pytest.raises(DatasetError, match="too little to train on"):
        stratified_split(labels_for([20, 20]), ["a", "b"], val=0.5, test=0.45, seed=0)


# Demos ------------------------------------------------------------------------------------


def test_shapes_demo_has_three_balanced_classes_split_80_10_10(shapes_dataset) -> None:
    summary = shapes_dataset.summary()
    assert summary["classes"] == ["circle", "square", "triangle"]
    assert summary["counts"] == {"circle": 100, "square": 100, "triangle": 100}
    assert summary["kept"] == 300 and summary["dropped"] == []
    assert summary["splits"] == {"train": 240, "val": 30, "test": 30}
    assert shapes_dataset.channels == 3
    assert all(row["val"] == 10 and row["test"] == 10
               for row in shapes_dataset.class_split_counts().values())
    assert load_dataset("shapes").summary() == summary  # the manifest on disk says the same


def test_digits_demo_holds_all_1797_grayscale_images(studio_home) -> None:
    dataset = add_demo("digits", "digits")
    assert len(dataset.items) == 1797
    assert dataset.classes == [str(d) for d in range(10)]
    assert dataset.channels == 1
    assert sum(dataset.split_counts().values()) == 1797
    assert all(count > 0 for row in dataset.class_split_counts().values()
               for count in row.values())
    native = load_cache(dataset, 8)
    assert native.shape == (1797, 8, 8, 1)
    assert native.max() > 200  # 0..16 intensities were stretched to 0..255


def test_demo_of_an_existing_name_is_refused_unless_overwritten(shapes_dataset) -> None:
    with pytest.raises(DatasetError, match="already exists"):
        add_demo("shapes", "shapes")
    again = add_demo("shapes", "shapes", overwrite=True, seed=1)
    assert again.seed == 1 and len(again.items) == 300


def test_unknown_demo_kind_names_the_ones_there_are(studio_home) -> None:
    with pytest.raises(DatasetError, match="shapes"):
        add_demo("cifar-1000", "c")


needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST_DIR.exists(),
    reason=f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR} "
           "(Debian package dataset-fashion-mnist)")


@needs_fashion_mnist
def test_fashion_mnist_files_hold_60k_train_and_the_official_10k_test_images() -> None:
    arrays = fashion_mnist_arrays()
    assert arrays["train"][0].shape == (60_000, 28, 28)
    assert arrays["test"][0].shape == (10_000, 28, 28)
    assert sorted(set(arrays["test"][1].tolist())) == list(range(len(FASHION_CLASSES)))


@needs_fashion_mnist
def test_fashion_mnist_demo_keeps_the_official_test_set_and_carves_val_from_train(
        studio_home, monkeypatch) -> None:
    arrays = fashion_mnist_arrays()
    # A slice of the real files keeps the check cheap: writing all 70,000 PNGs takes minutes.
    subset = {part: (images[:400], labels[:400]) for part, (images, labels) in arrays.items()}
    loader, classes, description = DEMOS["fashion-mnist"]
    monkeypatch.setitem(DEMOS, "fashion-mnist", (lambda: subset, classes, description))
    dataset = add_demo("fashion-mnist", "fm", val=0.1, test=0.1)
    assert dataset.classes == FASHION_CLASSES and dataset.channels == 1
    splits = dataset.split_counts()
    assert splits["test"] == 400  # all of the official test slice, and nothing more
    assert splits["train"] + splits["val"] == 400
    assert 30 <= splits["val"] <= 50
    assert all(item.source.startswith("test/") == (item.split == "test") for item in dataset.items)
    cache = load_cache(dataset, 28)  # primed from the arrays, train part then test part
    for index in (0, 399, 400, 799):
        with Image.open(dataset.folder / dataset.items[index].file) as image:
            assert np.array_equal(cache[index, :, :, 0], np.asarray(image))


# Cache ------------------------------------------------------------------------------------


def test_cache_is_built_once_and_reused(shapes_dataset) -> None:
    path = cache_path(shapes_dataset, 24)
    assert not path.exists()
    first = load_cache(shapes_dataset, 24)
    assert first.shape == (300, 24, 24, 3) and first.dtype == np.uint8
    built = path.stat().st_mtime_ns
    second = load_cache(shapes_dataset, 24)
    assert path.stat().st_mtime_ns == built
    assert np.array_equal(first, second)


def test_cache_holds_each_image_as_the_inference_transform_makes_it(shapes_dataset) -> None:
    images = load_cache(shapes_dataset, 16)
    for index in (0, 150, 299):
        item = shapes_dataset.items[index]
        with Image.open(shapes_dataset.folder / item.file) as image:
            assert np.array_equal(images[index], fit_image(image, 16, 3))


def test_demo_primes_the_cache_at_its_native_size(shapes_dataset) -> None:
    assert default_image_size(shapes_dataset) == 32
    assert cache_path(shapes_dataset, 32).exists()
    images = load_cache(shapes_dataset, 32)
    assert images.shape == (300, 32, 32, 3)
    for index in (0, 123, 299):  # written from the arrays: must follow the items' order
        with Image.open(shapes_dataset.folder / shapes_dataset.items[index].file) as image:
            assert np.array_equal(images[index], np.asarray(image))


# fit_image --------------------------------------------------------------------------------


def banded(width: int, height: int, horizontal: bool) -> Image.Image:
    """Red outer thirds around a green middle third, along the long side."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    if horizontal:
        pixels[:, width // 3: 2 * width // 3] = (0, 255, 0)
    else:
        pixels[height // 3: 2 * height // 3, :] = (0, 255, 0)
    return Image.fromarray(pixels)


@pytest.mark.parametrize(("width", "height"), [(60, 20), (20, 60)])
def test_fit_image_keeps_the_centre_square_of_a_long_image(width: int, height: int) -> None:
    out = fit_image(banded(width, height, horizontal=width > height), 20, 3)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert (out == (0, 255, 0)).all()  # the red outer thirds were cropped away


def test_fit_image_scales_the_short_side_to_the_size_before_cropping() -> None:
    out = fit_image(banded(90, 30, horizontal=True), 10, 3)
    assert out.shape == (10, 10, 3)
    assert (out[:, :, 1] > 200).all() and (out[:, :, 0] < 50).all()


def test_fit_image_gives_one_channel_for_grayscale_and_upscales_small_images() -> None:
    out = fit_image(Image.new("RGB", (8, 8), (200, 200, 200)), 16, 1)
    assert out.shape == (16, 16, 1)
    assert (out == 200).all()


# Loader -----------------------------------------------------------------------------------


def random_images(n: int = 8, size: int = 12, channels: int = 3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, channels), generator=generator, dtype=torch.uint8)


def as_float(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).float() / 255


def test_augment_with_everything_off_is_the_identity() -> None:
    images = random_images()
    zeros, ones = torch.zeros(3), torch.ones(3)
    out = to_model_input(images, zeros, ones, Augment(flip=False, pad_crop=0, jitter=0),
                         torch.Generator().manual_seed(0))
    assert torch.equal(out, as_float(images))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_model_input_is_normalised_per_channel() -> None:
    images = random_images()
    mean, std = torch.tensor([0.5, 0.25, 0.0]), torch.tensor([0.5, 0.25, 2.0])
    out = to_model_input(images, mean, std)
    expected = (as_float(images) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.allclose(out, expected)


def test_flip_keeps_shape_and_dtype_and_mirrors_some_images_only() -> None:
    x = as_float(random_images(n=32))
    out = random_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    mirrored = [torch.equal(out[i], x[i].flip(2)) for i in range(len(x))]
    kept = [torch.equal(out[i], x[i]) for i in range(len(x))]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 0 < sum(mirrored) < len(x)


def test_pad_crop_keeps_shape_and_dtype_and_shifts_within_the_reflected_border() -> None:
    pad = 2
    x = as_float(random_images(n=16, size=10))
    out = random_pad_crop(x, pad, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    shifts = []
    for i in range(len(x)):
        windows = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(out[i], padded[i, :, dy:dy + 10, dx:dx + 10])]
        assert windows, f"image {i} is not a crop of its padded self"
        shifts.append(windows[0])
    assert len(set(shifts)) > 1


def test_pad_crop_with_a_seeded_generator_is_reproducible() -> None:
    x = as_float(random_images(n=16))
    first = random_pad_crop(x, 4, torch.Generator().manual_seed(3))
    assert torch.equal(first, random_pad_crop(x, 4, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, random_pad_crop(x, 4, torch.Generator().manual_seed(4)))


def test_full_augment_keeps_shape_and_jitter_stays_in_the_pixel_range() -> None:
    images = random_images(n=6, channels=1)
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    out = to_model_input(images, mean, std, Augment(flip=True, pad_crop=3, jitter=0.4),
                         torch.Generator().manual_seed(0))
    assert out.shape == (6, 1, 12, 12) and out.dtype == torch.float32
    assert out.min() >= (0 - 0.5) / 0.25 and out.max() <= (1 - 0.5) / 0.25  # clamped to [0, 1]
    jittered = to_model_input(images, mean, std, Augment(flip=False, pad_crop=0, jitter=0.4),
                              torch.Generator().manual_seed(0))
    assert not torch.equal(jittered, to_model_input(images, mean, std))


def split_of(n: int) -> DeviceSplit:
    images = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1).repeat(2, axis=1).repeat(2, axis=2)
    return DeviceSplit(images, np.arange(n) % 3, CPU)


def test_shuffled_batches_cover_every_index_once_per_epoch() -> None:
    split = split_of(50)
    seen, generator = [], torch.Generator().manual_seed(0)
    for images, labels in split.batches(16, shuffle=True, generator=generator):
        assert images.dtype == torch.uint8 and images.shape[1:] == (2, 2, 1)
        index = images[:, 0, 0, 0].long()
        assert torch.equal(labels, index % 3)  # labels travel with their images
        seen += index.tolist()
    assert sorted(seen) == list(range(50))
    assert seen != list(range(50))  # shuffled


def test_batches_without_shuffle_come_in_order_and_drop_last_drops_the_remainder() -> None:
    split = split_of(50)
    in_order = torch.cat([images[:, 0, 0, 0] for images, _ in split.batches(16, shuffle=False)])
    assert in_order.tolist() == list(range(50))
    sizes = [len(labels) for _, labels in split.batches(16, shuffle=True, drop_last=True,
                                                          generator=torch.Generator())]
    assert sizes == [16, 16, 16]
    # a split smaller than one batch is one whole batch, not none (a tiny training set trains)
    assert [len(labels) for _, labels in split_of(10).batches(16, shuffle=False,
                                                             drop_last=True)] == [10]


def test_same_generator_seed_gives_the_same_batch_order() -> None:
    split = split_of(40)

    def order(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [int(v) for images, _ in split.batches(8, shuffle=True, generator=generator)
                for v in images[:, 0, 0, 0]]

    assert order(5) == order(5)
    assert order(5) != order(6)


def test_channel_stats_are_in_unit_range_per_channel() -> None:
    images = np.zeros((4, 2, 2, 3), dtype=np.uint8)
    images[..., 0] = 255
    images[:2, ..., 1] = 255
    mean, std = channel_stats(images)
    assert mean == pytest.approx([1.0, 0.5, 0.0])
    assert std == pytest.approx([1e-3, 0.5, 1e-3])  # a flat channel's std is floored, not 0


def test_augmentation_preview_changes_images_like_training_and_keeps_them_uint8():
    from core.data.loader import augment_images

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    off = augment_images(images, Augment(flip=False, pad_crop=0, jitter=0.0))
    assert off.dtype == np.uint8 and np.array_equal(off, images)
    flipped = augment_images(images, Augment(flip=True, pad_crop=0, jitter=0.0), seed=1)
    for before, after in zip(images, flipped, strict=True):
        assert np.array_equal(after, before) or np.array_equal(after, before[:, ::-1])
    assert not np.array_equal(flipped, images)


def test_ranks_augmenting_their_shares_match_one_process_augmenting_the_batch():
    """Under torchrun each rank augments its share of a batch; together they must flip, shift
    and jitter every image exactly as one process augmenting the whole batch does."""
    images = torch.rand(12, 3, 16, 16)
    augment = Augment(flip=True, pad_crop=3, jitter=0.3)
    whole = apply_augment(images, augment, torch.Generator().manual_seed(5))
    shares = [apply_augment(images[rank * 4:(rank + 1) * 4],
                            dataclasses.replace(augment, share=(rank, 3)),
                            torch.Generator().manual_seed(5))
              for rank in range(3)]
    assert torch.equal(torch.cat(shares), whole)
