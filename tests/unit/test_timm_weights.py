"""A timm architecture started from weights on disk (`--weights FILE`), and the "pretrained"
download's one-sentence answer when the Hub cannot be reached. Local files only: no test
downloads."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file

from core.config import TrainConfig
from core.data.catalog import add_demo
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store
from core.training.transfer import can_freeze
from models import ModelError, create_model

ARCH = "test_resnet"  # timm's own tiny test network (0.47M parameters)


def imagenet_like(tmp_path: Path, seed: int = 0) -> tuple[Path, dict]:
    """A 1000-class ARCH's weights as a .safetensors file, as the Hub ships them."""
    torch.manual_seed(seed)
    state = {key: value.contiguous() for key, value in
             timm.create_model(ARCH, num_classes=1000).state_dict().items()}
    path = tmp_path / f"{ARCH}.safetensors"
    save_file(state, str(path))
    return path, state


def test_a_safetensors_file_starts_the_backbone_with_a_new_head(tmp_path: Path) -> None:
    path, state = imagenet_like(tmp_path)
    model = create_model(ARCH, in_chans=3, num_classes=4, image_size=32, weights=str(path))
    own = model.state_dict()
    assert torch.equal(own["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    assert model.get_classifier().out_features == 4
    fresh = create_model(ARCH, in_chans=3, num_classes=4, image_size=32)
    assert not torch.equal(fresh.state_dict()["layer1.0.conv1.weight"],
                           state["layer1.0.conv1.weight"])


def test_a_timm_checkpoint_loads_and_grayscale_gets_an_adapted_first_layer(tmp_path) -> None:
    _, state = imagenet_like(tmp_path)
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": state, "epoch": 3}, checkpoint)  # as timm's train.py saves
    model = create_model(ARCH, in_chans=1, num_classes=3, image_size=32, weights=checkpoint)
    first = model.state_dict()["conv1.0.weight"]
    assert first.shape[1] == 1
    assert torch.allclose(first[:, 0], state["conv1.0.weight"].sum(dim=1))


def test_weights_of_another_architecture_say_they_do_not_fit(tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(other))
    with pytest.raises(ModelError, match="do not fit"):
        create_model(ARCH, in_chans=3, num_classes=3, image_size=32, weights=other)


def test_a_missing_file_or_a_preset_with_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no weights file"):
        create_model(ARCH, in_chans=3, num_classes=3, image_size=32,
                     weights=tmp_path / "absent.safetensors")
    path, _ = imagenet_like(tmp_path)
    with pytest.raises(ModelError, match="timm architectures only"):
        create_model("tiny-cnn", in_chans=3, num_classes=3, image_size=32, weights=path)


def test_pretrained_offline_says_in_one_sentence_how_to_supply_weights(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to reuse
    with pytest.raises(ModelError) as error:
        create_model(ARCH, in_chans=3, num_classes=3, image_size=32, weights="pretrained",
                     cache_dir=tmp_path / "weights")
    message = str(error.value)
    assert "cannot be fetched" in message and "--weights FILE" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_a_run_with_a_weights_file_trains_and_may_freeze_its_backbone(studio_home,
                                                                      tmp_path) -> None:
    path, state = imagenet_like(tmp_path)
    add_demo("shapes", "shapes")
    assert can_freeze(ARCH, None, str(path)) and not can_freeze(ARCH, None, None)
    store = Store()
    config = TrainConfig(data="shapes", model=ARCH, epochs=1, image_size=32, weights=str(path),
                         freeze_epochs=1, device="cpu")
    run_id = new_run(config, store, status="running")
    result = execute_run(run_id, store)
    assert result["status"] == "completed", result
