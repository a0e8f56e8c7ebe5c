"""Grad-CAM heat maps and overlays: shape, range, target layer, and that they point at the shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.analysis.explain import colormap, grad_cam, overlay
from core.serving.infer import LoadedModel, load_model
from models import create_model

SPEC = {"layers": [{"type": "conv", "filters": 8, "activation": "relu"}, {"type": "pool"},
                   {"type": "conv", "filters": 16, "activation": "relu"},
                   {"type": "globalpool"}]}


@pytest.fixture(scope="module")
def trained(shapes_workspace, train_shapes_run):
    """A tiny-cnn run trained one epoch on the shapes demo, loaded for inference."""
    return load_model(train_shapes_run(shapes_workspace), shapes_workspace)


def untrained(model: str | dict, image_size: int = 32, in_chans: int = 3) -> LoadedModel:
    torch.manual_seed(0)
    classes = ["circle", "square", "triangle"]
    network = create_model(model, in_chans=in_chans, num_classes=len(classes),
                           image_size=image_size).eval()
    card = {"model": model, "classes": classes, "in_chans": in_chans, "image_size": image_size,
            "mean": [0.5] * in_chans, "std": [0.25] * in_chans}
    return LoadedModel("untrained", network, card, torch.device("cpu"))


def square_image(box: tuple[int, int, int, int], size: tuple[int, int] = (32, 32),
                 background=(40, 30, 60), colour=(230, 200, 60)) -> Image.Image:
    image = Image.new("RGB", size, background)
    ImageDraw.Draw(image).rectangle(box, fill=colour)
    return image


def check_heatmap(heat: np.ndarray, size: int) -> None:
    assert heat.shape == (size, size) and heat.dtype == np.float32
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0


def test_grad_cam_of_a_trained_tiny_cnn_is_input_sized_in_unit_range(trained) -> None:
    heat = grad_cam(trained, square_image((8, 8, 20, 20), size=(50, 40)))
    check_heatmap(heat, 32)
    assert heat.max() == pytest.approx(1.0)


@pytest.mark.parametrize(("model", "size"), [
    ("resnet9-small", 32), ("resnet18", 64), ("mobilenetv3_small_100", 64),
    ("efficientnet_b0", 64), (SPEC, 32),
], ids=["resnet9-small", "timm-resnet18", "timm-mobilenetv3", "timm-efficientnet", "spec"])
def test_grad_cam_finds_a_feature_map_in_every_kind_of_model(model, size) -> None:
    loaded = untrained(model, size)
    image = square_image((10, 10, 40, 40), size=(size, size))
    for class_index in range(3):
        check_heatmap(grad_cam(loaded, image, class_index), size)


def test_grad_cam_works_on_grayscale_models() -> None:
    loaded = untrained("tiny-cnn", 28, in_chans=1)
    check_heatmap(grad_cam(loaded, Image.new("L", (28, 28), 90)), 28)


def test_grad_cam_evidence_for_square_lies_on_the_square(trained) -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        x0, y0 = (int(v) for v in rng.integers(2, 16, 2))
        side = int(rng.integers(8, 14))
        heat = grad_cam(trained, square_image((x0, y0, x0 + side, y0 + side)),
                        trained.classes.index("square"))
        inside = np.zeros((32, 32), dtype=bool)
        inside[y0:y0 + side + 1, x0:x0 + side + 1] = True
        assert heat[inside].mean() > heat[~inside].mean() + 0.2


def test_grad_cam_depends_on_the_class_asked_for(trained) -> None:
    image = square_image((6, 6, 22, 22))
    heats = [grad_cam(trained, image, index) for index in range(3)]
    assert not np.allclose(heats[0], heats[1]) or not np.allclose(heats[1], heats[2])
    predicted = int(np.argmax(trained.probabilities([image])[0]))
    np.testing.assert_array_equal(grad_cam(trained, image), heats[predicted])


def test_grad_cam_uses_the_layer_it_is_given(trained) -> None:
    image = square_image((6, 6, 22, 22))
    first_conv = trained.model[0]
    heat = grad_cam(trained, image, 1, layer=first_conv)
    check_heatmap(heat, 32)
    assert not np.allclose(heat, grad_cam(trained, image, 1))


def test_grad_cam_refuses_a_class_out_of_range(trained) -> None:
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(trained, square_image((6, 6, 22, 22)), 3)


def test_grad_cam_leaves_the_model_without_hooks(trained) -> None:
    grad_cam(trained, square_image((6, 6, 22, 22)))
    assert all(not module._forward_hooks for module in trained.model.modules())
    assert all(p.grad is None for p in trained.model.parameters())


@pytest.mark.parametrize("size", [(32, 32), (80, 50), (37, 91)])
def test_overlay_keeps_the_image_size(size) -> None:
    image = Image.new("L", size, 128)
    heat = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    result = overlay(image, heat, opacity=0.6)
    assert result.size == size and result.mode == "RGB"


def test_overlay_tints_only_the_square_the_model_saw() -> None:
    image = Image.new("RGB", (60, 20), (128, 128, 128))
    result = np.asarray(overlay(image, np.ones((32, 32), dtype=np.float32), opacity=1.0))
    assert tuple(result[10, 30]) == tuple(colormap(np.array(1.0)))  # centre: full heat colour
    assert tuple(result[10, 2]) == (128, 128, 128)  # the cropped-off strip is untouched


def test_opacity_zero_gives_back_the_image() -> None:
    image = square_image((4, 4, 20, 20))
    result = overlay(image, np.ones((32, 32), dtype=np.float32), opacity=0.0)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(image))


def test_colormap_runs_from_blue_to_red() -> None:
    low, high = colormap(np.array([0.0, 1.0]))
    assert low[2] > low[0] and high[0] > high[2]
    assert colormap(np.zeros((4, 5))).shape == (4, 5, 3)

