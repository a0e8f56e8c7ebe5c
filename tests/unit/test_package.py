"""The model package: a zip whose predict.py runs alone (onnxruntime, numpy, pillow) and agrees
with `core predict`; INT8/FP16 measured again on the test split, refused past one point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

import core.serving.quantize as quantize
from core.__main__ import main
from core.config import TrainConfig
from core.data import catalog
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.serving.package import build_package
from core.store import Store
from tests.upload_files import png


@pytest.fixture(scope="module")
def run_id(tmp_path_factory: pytest.TempPathFactory) -> str:
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("package") / "workspace"
        patch.setenv("CNN_STUDIO_HOME", str(home))
        patch.delenv("CNN_STUDIO_DB", raising=False)
        catalog.add_demo("shapes", "shapes")
        store = Store()
        run = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=2, device="cpu"),
                      store, status="running")
        assert execute_run(run, store)["status"] == "completed"
        yield run


@pytest.fixture(scope="module")
def fp32_package(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_package(run_id, tmp_path_factory.mktemp("fp32") / "shapes.zip")


def unpack(zip_path: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    return folder


def photos(folder: Path) -> list[Path]:
    """Images unlike the 32 px training squares: other sizes, modes and formats."""
    rng = np.random.default_rng(3)
    files = {"wide.jpg": Image.fromarray(rng.integers(0, 256, (40, 90, 3), dtype=np.uint8)),
             "photo.jpg": Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
                                          ).resize((600, 400)),  # a JPEG decoded at 1/4
             "gray.png": Image.fromarray(rng.integers(0, 256, (50, 33), dtype=np.uint8)),
             "clear.png": Image.new("RGBA", (20, 20), (0, 120, 0, 100)),
             "square.bmp": Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))}
    paths = []
    for name, image in files.items():
        image.save(folder / name)
        paths.append(folder / name)
    (folder / "flat.png").write_bytes(png((250, 250, 10), (64, 48)))
    return [*paths, folder / "flat.png"]


def core_predict(run_id: str, images: list[Path], capsys) -> dict:
    capsys.readouterr()
    assert main(["predict", "--run", run_id, "--json", *map(str, images)]) == 0
    return json.loads(capsys.readouterr().out)


def standalone_predict(package: Path, images: list[Path],
                       *flags: str) -> subprocess.CompletedProcess:
    """predict.py in a fresh interpreter (-I: no PYTHONPATH, no user site, no current folder)
    from the package's folder, which holds nothing of the repository."""
    return subprocess.run([sys.executable, "-I", "predict.py", *flags, *map(str, images)],
                          cwd=package, capture_output=True, text=True, timeout=120)


def test_package_holds_model_card_script_and_readme(fp32_package) -> None:
    with zipfile.ZipFile(fp32_package["path"]) as archive:
        assert sorted(archive.namelist()) == ["README.md", "features_bank.npy", "model.json",
                                              "model.onnx", "predict.py"]
        card = json.loads(archive.read("model.json"))
        readme = archive.read("README.md").decode()
        script = archive.read("predict.py").decode()
    assert card["classes"] == ["circle", "square", "triangle"]
    assert (card["image_size"], card["in_chans"], card["precision"]) == (32, 3, "fp32")
    assert len(card["mean"]) == len(card["std"]) == 3 and card["resize_mode"] == "crop"
    assert card["data"]["content_hash"] and card["training_config"]["model"] == "tiny-cnn"
    assert card["metrics"]["package_test"]["split"] == "test"
    assert card["metrics"]["package_test"]["images"] == 30
    assert card["parity"]["passed"] and 0.05 <= card["temperature"] <= 20
    assert card["unknown"]["method"] == "knn" and card["unknown"]["bank"] == "features_bank.npy"
    assert "import core" not in script and "from core" not in script
    usage = readme.split("```")[1].strip().splitlines()
    assert len(usage) == 3 and usage[-1].startswith("python predict.py")
    assert f"{card['metrics']['package_test']['accuracy']:.2%}" in readme


def test_standalone_predict_agrees_with_core_predict(fp32_package, run_id, tmp_path,
                                                     capsys) -> None:
    package = unpack(fp32_package["path"], tmp_path / "alone")
    images = photos(tmp_path)
    done = standalone_predict(package, images, "--json")
    assert done.returncode == 0, done.stderr
    alone = json.loads(done.stdout)
    ours = core_predict(run_id, images, capsys)
    assert alone["run_id"] == ours["run_id"] == run_id
    assert alone["temperature"] == pytest.approx(ours["temperature"])
    assert alone["detector"] == pytest.approx(ours["detector"]) and ours["detector"]
    assert len(alone["predictions"]) == len(ours["predictions"]) == len(images)
    assert any(p["unknown"] for p in ours["predictions"])  # noise is like no training image
    for got, want in zip(alone["predictions"], ours["predictions"], strict=True):
        assert got["image"] == want["image"]
        assert [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]]
        np.testing.assert_allclose([t["prob"] for t in got["top"]],
                                   [t["prob"] for t in want["top"]], atol=1e-4)
        assert got["unknown"] == want["unknown"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)


def test_standalone_predict_prints_a_table_and_refuses_a_non_image(fp32_package,
                                                                   tmp_path) -> None:
    package = unpack(fp32_package["path"], tmp_path / "alone")
    image = tmp_path / "one.png"
    image.write_bytes(png((10, 10, 200), 32))
    done = standalone_predict(package, [image])
    assert done.returncode == 0 and done.stdout.startswith(f"{image}: ")
    assert done.stdout.count(",") == 2  # three classes: label prob, label prob, label prob
    (tmp_path / "notes.png").write_text("not an image")
    refused = standalone_predict(package, [tmp_path / "notes.png"])
    assert refused.returncode != 0 and "cannot classify" in refused.stderr


def test_int8_package_reports_its_accuracy_against_fp32(run_id, tmp_path, capsys) -> None:
    code = main(["export", "--run", run_id, "--format", "package", "--quantize", "int8",
                 "--out", str(tmp_path / "int8.zip"), "--json"])
    result = json.loads(capsys.readouterr().out)
    report = result["quantization"]
    assert report["kind"] == "int8" and report["split"] == "test" and report["images"] == 30
    assert report["accepted"] == (report["loss_points"] <= 1.0)
    assert code == (0 if report["accepted"] else 1)
    fp32, int8 = report["fp32"], report["int8"]
    assert int8["size_bytes"] < fp32["size_bytes"] / 2  # int8 weights: about a quarter
    assert report["loss_points"] == pytest.approx((fp32["accuracy"] - int8["accuracy"]) * 100,
                                                  abs=1e-3)
    for change in report["changed"]:
        assert change["fp32"] != change["int8"] and Path(change["file"]).suffix == ".png"
    with zipfile.ZipFile(result["path"]) as archive:
        card = json.loads(archive.read("model.json"))
        model = onnx.load_from_string(archive.read("model.onnx"))
    assert card["quantization"]["verdict"] == report["verdict"]
    quantized = any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    assert quantized == report["accepted"] and card["precision"] == result["precision"]


def last_bias(model: onnx.ModelProto) -> onnx.TensorProto:
    return next(t for t in reversed(model.graph.initializer) if len(t.dims) == 1
                and t.dims[0] == 3 and t.data_type == onnx.TensorProto.FLOAT)


def sabotaged(fp32: Path, out: Path, calibration: np.ndarray) -> None:
    """A "quantized" model whose last bias makes every image the class FP32 answers least:
    one third right on the balanced test split, far worse than FP32."""
    rarest = int(np.bincount(quantize.session(fp32).run(["logits"], {"input": calibration})[0]
                             .argmax(1), minlength=3).argmin())
    model = onnx.load(str(fp32))
    bias = last_bias(model)
    value = numpy_helper.to_array(bias).copy()
    value[rarest] += 1e4
    bias.CopyFrom(numpy_helper.from_array(value, bias.name))
    onnx.save(model, str(out))


def test_int8_losing_more_than_a_point_is_refused_and_fp32_kept(run_id, tmp_path, capsys,
                                                                 monkeypatch) -> None:
    monkeypatch.setattr(quantize, "write_int8", sabotaged)
    code = main(["export", "--run", run_id, "--format", "package", "--quantize", "int8",
                 "--out", str(tmp_path / "bad.zip"), "--json"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    report = result["quantization"]
    assert code == 1 and not report["accepted"] and result["precision"] == "fp32"
    assert report["loss_points"] > 1.0 and report["int8"]["accuracy"] == pytest.approx(1 / 3)
    assert len(report["changed"]) > 0
    assert "not good enough" in captured.err and "holds the FP32 model" in captured.err
    with zipfile.ZipFile(result["path"]) as archive:
        card = json.loads(archive.read("model.json"))
        model = onnx.load_from_string(archive.read("model.onnx"))
    assert card["precision"] == "fp32" and card["quantization"]["accepted"] is False
    assert card["metrics"]["package_test"]["accuracy"] == report["fp32"]["accuracy"]
    assert float(np.abs(numpy_helper.to_array(last_bias(model))).max()) < 1e3  # not the bad one


def test_fp16_package_keeps_float32_inputs(run_id, tmp_path) -> None:
    result = build_package(run_id, tmp_path, "fp16")
    report = result["quantization"]
    assert report["kind"] == "fp16" and report["accepted"] and report["loss_points"] <= 1.0
    assert report["fp16"]["size_bytes"] < report["fp32"]["size_bytes"] * 0.6
    assert Path(result["path"]).name.endswith(".zip")
    with zipfile.ZipFile(result["path"]) as archive:
        model = onnx.load_from_string(archive.read("model.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_package_without_its_dataset_refuses_int8_and_says_why(run_id, tmp_path,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(quantize, "split_images", lambda *args, **kwargs: None)
    result = build_package(run_id, tmp_path / "gone.zip", "int8")
    assert result["precision"] == "fp32" and result["test"] is None
    assert "gone or has changed" in result["quantization"]["verdict"]
    with zipfile.ZipFile(result["path"]) as archive:
        assert "not measured" in archive.read("README.md").decode()


def test_quantize_without_package_format_is_refused(run_id, capsys) -> None:
    assert main(["export", "--run", run_id, "--format", "onnx", "--quantize", "int8",
                 "--out", "/tmp/never.onnx"]) == 2
    assert "--format package" in capsys.readouterr().err
    assert not Path("/tmp/never.onnx").exists()


def test_predict_script_decodes_as_the_importer_does() -> None:
    """The package's copy of decode + fit against the project's own (no subprocess)."""
    from core.data.images import decode_image
    from core.data.transforms import fit_image
    from core.serving import package_predict

    buffer = io.BytesIO()
    Image.new("LA", (30, 17), (90, 128)).save(buffer, "PNG")
    for data in (buffer.getvalue(), png((1, 2, 3), (70, 20)), png(7, 9, "L")):
        for channels in (1, 3):
            ours = fit_image(decode_image(data, 10**7), 16, channels)
            theirs = package_predict.fit(package_predict.decode(data), 16, channels)
            np.testing.assert_array_equal(ours, theirs)
    photo = io.BytesIO()  # a JPEG decodes at reduced size for a small input, in both
    Image.effect_noise((120, 90), 40).convert("RGB").save(photo, "JPEG")
    for channels in (1, 3):
        ours = fit_image(decode_image(photo.getvalue(), 10**7, draft_to=16), 16, channels)
        theirs = package_predict.fit(package_predict.decode(photo.getvalue(), 16), 16, channels)
        np.testing.assert_array_equal(ours, theirs)
