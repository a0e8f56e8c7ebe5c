"""Shipping a run: ONNX / TorchScript / safetensors export with parity checks and a model card,
the `export` command, and importing safetensors weights (never a pickle) as a new run."""

from __future__ import annotations

import io
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

import core.serving.export
from core.__main__ import main
from core.config import TrainConfig
from core.data import catalog
from core.data.dataset import DatasetError, load_dataset
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.serving.export import export_run, parity_inputs
from core.serving.infer import load_model
from core.serving.model_import import import_model
from core.store import Store
from core.workspace import runs_dir

MODELS = ("tiny-cnn", "resnet9-small")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("export") / "workspace"
        patch.setenv("CNN_STUDIO_HOME", str(home))
        patch.delenv("CNN_STUDIO_DB", raising=False)
        catalog.add_demo("shapes", "shapes")
        yield home


def train(model: str, data: str = "shapes") -> str:
    store = Store()
    config = TrainConfig(data=data, model=model, epochs=1, device="cpu")
    run_id = new_run(config, store, status="running")
    assert execute_run(run_id, store)["status"] == "completed"
    return run_id


@pytest.fixture(scope="module")
def trained(workspace: Path) -> dict[str, str]:
    """model name → id of a run trained one epoch on the shapes demo."""
    return {model: train(model) for model in MODELS}


def onnx_logits(path: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def torch_logits(run_id: str, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return load_model(run_id).model(torch.from_numpy(x)).numpy()


# ---------------------------------------------------------------------------------- export

@pytest.fixture(scope="module")
def onnx_exports(trained, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """model name → export_run's result for its run, exported once (ONNX export takes seconds)."""
    folder = tmp_path_factory.mktemp("onnx")
    return {model: export_run(run_id, "onnx", folder / f"{model}.onnx")
            for model, run_id in trained.items()}


@pytest.mark.parametrize("model", MODELS)
def test_onnx_export_matches_pytorch_on_validation_images(onnx_exports, model) -> None:
    result = onnx_exports[model]
    parity = result["parity"]
    assert parity["passed"] and parity["inputs"] == "validation"
    assert parity["max_abs_diff"] <= parity["tolerance"] == 1e-3
    assert parity["top1_agreement"] == 1.0
    assert parity["images"] == load_dataset("shapes").split_counts()["val"]
    assert Path(result["path"]).is_file() and result["format"] == "onnx"


def test_onnx_card_says_how_to_feed_the_model(onnx_exports) -> None:
    result = onnx_exports["tiny-cnn"]
    assert result["card"] == result["path"] + ".card.json"  # model.onnx.card.json
    card = json.loads(Path(result["card"]).read_text())
    assert card["classes"] == ["circle", "square", "triangle"]
    assert card["input"]["shape"] == ["batch", 3, 32, 32]
    assert card["input"]["layout"].startswith("NCHW")
    assert card["preprocessing"]["channels_first"] is True
    assert "0..1" in card["preprocessing"]["pixel_scale"]
    assert len(card["mean"]) == len(card["std"]) == 3
    assert card["preprocessing"]["mean"] == card["mean"]
    assert set(card["metrics"]) >= {"best_val_acc", "test_acc"}
    assert card["training_config"]["model"] == "tiny-cnn"
    assert card["parity"] == result["parity"]
    assert card["torch_version"] == torch.__version__
    assert card["opset"] >= 17


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_export_takes_any_batch_size(trained, onnx_exports, batch) -> None:
    x = np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)
    got = onnx_logits(onnx_exports["tiny-cnn"]["path"], x)
    assert got.shape == (batch, 3)
    np.testing.assert_allclose(got, torch_logits(trained["tiny-cnn"], x), atol=1e-4)


@pytest.mark.parametrize("model", MODELS)
def test_torchscript_export_matches_pytorch(trained, tmp_path, model) -> None:
    result = export_run(trained[model], "torchscript", tmp_path / "model.pt")
    assert result["parity"]["passed"] and result["parity"]["top1_agreement"] == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        module = torch.jit.load(result["path"])
    x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, torch_logits(trained[model], x), atol=1e-4)


def test_export_parity_is_recorded_on_the_run(trained, tmp_path) -> None:
    run_id = trained["tiny-cnn"]
    result = export_run(run_id, "torchscript", tmp_path / "recorded.pt")
    summary = Store().get_run(run_id)["summary"]
    recorded = summary["exports"][result["path"]]
    assert recorded["format"] == "torchscript" and recorded["parity"] == result["parity"]
    assert summary["status"] == "completed"  # the training result is kept beside it


def test_export_to_a_folder_names_the_file_after_the_run(trained, tmp_path) -> None:
    result = export_run(trained["tiny-cnn"], "torchscript", tmp_path)
    run = Store().get_run(trained["tiny-cnn"])
    assert Path(result["path"]) == tmp_path / f"{run['name']}.pt"


def test_export_without_its_dataset_checks_parity_on_random_images(trained, tmp_path,
                                                                   monkeypatch) -> None:
    def gone(name: str):
        raise DatasetError(f"There is no dataset named {name!r}.")

    monkeypatch.setattr(core.serving.export, "load_dataset", gone)
    result = export_run(trained["tiny-cnn"], "torchscript", tmp_path / "model.pt")
    assert result["parity"]["inputs"] == "random" and result["parity"]["passed"]


def test_parity_inputs_are_normalised_like_inference(trained) -> None:
    loaded = load_model(trained["tiny-cnn"])
    x, source = parity_inputs(loaded, limit=4)
    assert source == "validation" and x.shape == (4, 3, 32, 32) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1.5  # normalised, not raw 0..255


def test_unknown_format_is_refused(trained, tmp_path) -> None:
    with pytest.raises(ValueError, match="onnx, torchscript"):
        export_run(trained["tiny-cnn"], "tflite", tmp_path / "m.tflite")


# -------------------------------------------------------------------------------------- cli

def test_cli_export_prints_one_json_object(trained, tmp_path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    code = main(["export", "--run", trained["tiny-cnn"], "--format", "onnx", "--out", str(out),
                 "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["path"] == str(out) and payload["format"] == "onnx"
    assert payload["parity"]["passed"] and out.is_file()


def test_cli_export_fails_with_a_sentence_when_parity_fails(trained, tmp_path, capsys,
                                                            monkeypatch) -> None:
    monkeypatch.setattr(core.serving.export, "PARITY_TOLERANCE", -1.0)  # nothing can pass
    code = main(["export", "--run", trained["tiny-cnn"], "--format", "torchscript",
                 "--out", str(tmp_path / "m.pt")])
    assert code == 1
    assert "differ from PyTorch" in capsys.readouterr().err


def test_cli_export_of_unknown_run_says_so(workspace, tmp_path, capsys) -> None:
    code = main(["export", "--run", "nope", "--format", "onnx", "--out", str(tmp_path / "m")])
    assert code == 2 and "no run 'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- model import

def test_imported_safetensors_predict_like_the_original_run(trained, tmp_path) -> None:
    original = trained["tiny-cnn"]
    exported = export_run(original, "safetensors", tmp_path / "weights.safetensors")
    run_id = import_model(Path(exported["path"]), Path(exported["card"]), "imported-tiny")
    run = Store().get_run(run_id)
    assert run["status"] == "completed" and run["summary"]["imported"] is True
    x = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(torch_logits(run_id, x), torch_logits(original, x))
    assert load_model(run_id).classes == load_model(original).classes


def test_import_accepts_bytes_and_a_plain_state_dict(trained) -> None:
    loaded = load_model(trained["resnet9-small"])
    weights = save_safetensors({k: v.contiguous() for k, v in loaded.model.state_dict().items()})
    run_id = import_model(weights, json.dumps(loaded.card).encode(), "from-bytes")
    assert (runs_dir() / run_id / "best.safetensors").is_file()
    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(torch_logits(run_id, x), torch_logits(loaded.run_id, x))


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.pkl"])
def test_pickle_files_are_refused_unread(trained, tmp_path, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"never read")
    card = dict(load_model(trained["tiny-cnn"]).card)
    with pytest.raises(ValueError, match="pickle.*safetensors"):
        import_model(path, card, "pickled")


def test_pickle_bytes_are_refused(trained) -> None:
    card = dict(load_model(trained["tiny-cnn"]).card)
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    for data in (buffer.getvalue(), pickle.dumps({"w": [0.0]})):
        with pytest.raises(ValueError, match="only safetensors"):
            import_model(data, card, "pickled")
    assert Store().get_run("pickled") is None


def test_weights_that_do_not_fit_the_card_are_refused(trained, tmp_path) -> None:
    exported = export_run(trained["tiny-cnn"], "safetensors", tmp_path / "w.safetensors")
    card = json.loads(Path(exported["card"]).read_text())
    wrong = card | {"model": "resnet9-small"}
    with pytest.raises(ValueError, match="do not fit the card's model 'resnet9-small'"):
        import_model(Path(exported["path"]), wrong, "mismatched")
    more_classes = card | {"classes": ["a", "b", "c", "d"]}
    with pytest.raises(ValueError, match="another shape"):
        import_model(Path(exported["path"]), more_classes, "mismatched")
    assert Store().get_run("mismatched") is None


def test_card_without_normalisation_is_refused(trained, tmp_path) -> None:
    exported = export_run(trained["tiny-cnn"], "safetensors", tmp_path / "w.safetensors")
    card = json.loads(Path(exported["card"]).read_text())
    del card["mean"]
    with pytest.raises(ValueError, match="missing 'mean'"):
        import_model(Path(exported["path"]), card, "no-mean")
