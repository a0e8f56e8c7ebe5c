"""`model summary`: per layer output shape, parameters and FLOPs, adding up to the network's."""

from __future__ import annotations

import json

import pytest

from core.__main__ import main
from models import create_model, list_presets, model_profile, model_summary, summary_text


@pytest.mark.parametrize("name", list_presets())
def test_the_layers_add_up_to_the_whole_network(name: str) -> None:
    model = create_model(name, in_chans=1, num_classes=10, image_size=28)
    summary = model_summary(model, in_chans=1, image_size=28)
    profile = model_profile(model, in_chans=1, image_size=28)
    assert sum(row["params"] for row in summary["layers"]) == profile["params"]
    assert summary["params"] == profile["params"] and summary["flops"] == profile["flops"]
    assert sum(row["flops"] for row in summary["layers"]) == profile["flops"]
    assert summary["layers"][-1]["output_shape"] == [10]


def test_rows_follow_the_forward_pass_with_each_output_shape() -> None:
    model = create_model("tiny-cnn", in_chans=1, num_classes=10, image_size=28)
    rows = model_summary(model, in_chans=1, image_size=28)["layers"]
    assert [(row["type"], row["output_shape"]) for row in rows[:3]] == [
        ("Conv2d", [32, 28, 28]), ("ReLU", [32, 28, 28]), ("MaxPool2d", [32, 14, 14])]
    first = rows[0]
    assert first["params"] == 32 * 9 + 32  # weights and biases
    assert first["flops"] == 2 * 32 * 9 * 28 * 28  # 2 per multiply-add


def test_depth_groups_the_layers_into_their_blocks() -> None:
    model = create_model("resnet9-small", in_chans=3, num_classes=10, image_size=32)
    rows = model_summary(model, in_chans=3, image_size=32, depth=1)["layers"]
    assert [row["name"] for row in rows] == ["prep", "layer1", "layer2", "layer3", "pool", "fc",
                                             "out_scale"]
    text = summary_text(model_summary(model, in_chans=3, image_size=32, depth=1))
    assert "layer1 (Sequential)" in text and "Total params: " in text


def test_an_image_the_network_cannot_take_is_a_clear_error() -> None:
    model = create_model("tiny-cnn", in_chans=3, num_classes=10, image_size=32)
    with pytest.raises(ValueError, match="cannot take a 1-channel 32 px image"):
        model_summary(model, in_chans=1, image_size=32)


def test_the_command_prints_one_json_object(capsys) -> None:
    code = main(["model", "summary", "tiny-cnn", "--channels", "1", "--image-size", "28",
                 "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["image_size"] == 28 and payload["params"] == 421_642
    assert payload["layers"][0]["output_shape"] == [32, 28, 28]


def test_the_command_sizes_the_network_for_a_dataset(shapes_dataset, capsys) -> None:
    assert main(["model", "summary", "tiny-cnn", "--data", "shapes"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny-cnn for 3-channel 32 px images, 3 classes")
    assert "FLOPs per image: " in out
