"""Starting a run from earlier weights: the backbone carries over, the head only when it fits."""

import pytest
import torch

from core.config import TrainConfig
from core.data.catalog import add_demo
from core.data.dataset import load_dataset
from core.runs.execute import execute_run
from core.runs.record import new_run, run_folder
from core.store import Store
from core.training.checkpoint import load_weights
from core.training.prepare import build_model
from core.training.transfer import can_freeze, same_network
from models import PRETRAINED_NAME, PRETRAINED_NAMES, create_model


@pytest.fixture()
def source_run(studio_home):
    add_demo("shapes", "shapes")
    store = Store()
    run_id = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=1), store,
                     status="running")
    assert execute_run(run_id, store)["status"] == "completed"
    return run_id


def renamed_copy(name: str, classes: list[str]):
    add_demo("shapes", name)
    dataset = load_dataset(name)
    dataset.classes = classes
    dataset.save()
    return dataset


def start_from(run_id: str, dataset) -> tuple[dict, dict]:
    config = TrainConfig(data=dataset.name, model="tiny-cnn", init_from=run_id)
    model = build_model(config, dataset, 32)
    return model.state_dict(), load_weights(run_folder(run_id) / "best.safetensors")


def test_other_classes_get_a_new_head_on_the_earlier_backbone(source_run):
    own, earlier = start_from(source_run, renamed_copy("other", ["x", "y", "z"]))
    head = [key for key in own if key.endswith("weight")][-1]
    first_conv = next(key for key in own if key.endswith("weight"))
    assert torch.equal(own[first_conv], earlier[first_conv])
    assert not torch.equal(own[head], earlier[head])


def test_same_classes_keep_the_earlier_head(source_run):
    own, earlier = start_from(source_run, load_dataset("shapes"))
    assert all(torch.equal(own[key], earlier[key]) for key in earlier)


def test_pretrained_model_starts_with_a_zero_head():
    model = create_model(PRETRAINED_NAME, in_chans=3, num_classes=10, image_size=64)
    assert torch.count_nonzero(model.get_classifier().weight) == 0
    assert torch.count_nonzero(model.conv_stem.weight) > 0


def test_each_packaged_lite_is_one_network_with_its_timm_architecture_only():
    assert same_network("efficientnet-lite1-imagenet", "tf_efficientnet_lite1")
    assert same_network("tf_efficientnet_lite2", "efficientnet-lite2-imagenet")
    assert not same_network("efficientnet-lite1-imagenet", "efficientnet-lite0-imagenet")
    assert not same_network("efficientnet-lite2-imagenet", "tf_efficientnet_lite0")
    assert not same_network("efficientnet-lite0-imagenet", None)
    assert all(can_freeze(name, None) for name in PRETRAINED_NAMES)
