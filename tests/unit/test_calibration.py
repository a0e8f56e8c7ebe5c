"""Calibrated probabilities and "none of the classes I know": the temperature, the expected
calibration error, the unknown-input thresholds, and what training records of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from core.data.dataset import load_dataset
from core.serving.infer import load_model, open_image
from core.training.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
    softmax,
)
from core.training.run_files import CALIBRATION, FEATURE_BANK, MODEL_CARD, PREDICTIONS
from core.training.unknown import (
    BANK_SIZE,
    Detector,
    answered_share,
    detector_report,
    energy_score,
    knn_score,
    msp_score,
    normalise,
    threshold_keeping,
)
from core.workspace import runs_dir


def over_confident(n: int = 3000, classes: int = 5, scale: float = 4.0, seed: int = 0):
    """Labels drawn from softmax(z): z is calibrated by construction, scale·z over-confident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    probs = softmax(z)
    labels = np.array([rng.choice(classes, p=row) for row in probs])
    return z * scale, labels


def test_temperature_lowers_nll_and_ece_of_an_over_confident_model() -> None:
    logits, labels = over_confident()
    temperature = fit_temperature(logits[:1500], labels[:1500])
    held_logits, held_labels = logits[1500:], labels[1500:]
    assert temperature == pytest.approx(4.0, rel=0.15)  # it undoes the ×4 it was given
    assert nll(held_logits, held_labels, temperature) < nll(held_logits, held_labels) - 0.3
    before = expected_calibration_error(softmax(held_logits), held_labels)
    after = expected_calibration_error(softmax(held_logits, temperature), held_labels)
    assert before > 0.1 and after < before / 3


def test_temperature_never_raises_the_nll_it_is_fitted_on() -> None:
    logits, labels = over_confident(scale=1.0)  # calibrated already: T stays near 1
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(1.0, abs=0.1)
    assert nll(logits, labels, temperature) <= nll(logits, labels)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0)) == 1.0


def test_ece_of_a_hand_computed_example() -> None:
    # confidences 0.9 (bin 13 of 15: half right) and 0.6 (bin 8: all right)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    table = reliability_bins(probs, labels)
    assert table["count"][13] == 2 and table["count"][8] == 2 and sum(table["count"]) == 4
    assert table["accuracy"][13] == 0.5 and table["confidence"][8] == pytest.approx(0.6)
    assert table["accuracy"][0] is None  # an empty bin
    # (2·|0.5 − 0.9| + 2·|1 − 0.6|) / 4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_calibration_report_measures_on_the_test_split() -> None:
    logits, labels = over_confident()
    report = calibration_report(logits[:1500], labels[:1500], logits[1500:], labels[1500:])
    assert report["split"] == "test" and report["bins"] == 15
    assert report["ece_after"] < report["ece_before"]
    assert report["nll_after"] < report["nll_before"]
    assert sum(report["reliability"]["after"]["count"]) == 1500


@pytest.mark.parametrize("n", [1, 7, 20, 100, 1001])
def test_the_threshold_keeps_at_least_95_percent_of_validation(n: int) -> None:
    rng = np.random.default_rng(n)
    for scores in (rng.normal(size=n), rng.integers(0, 3, n).astype(float)):  # ties too
        threshold = threshold_keeping(scores)
        kept = answered_share(scores, threshold)
        assert kept >= 0.95
        # and no lower than it needs be: just above the lowest score kept answers < 95%
        lowest_kept = scores[scores >= threshold].min()
        assert answered_share(scores, np.nextafter(lowest_kept, np.inf)) < 0.95
        assert not np.any(np.isclose(scores, threshold, rtol=0, atol=1e-9))  # off every score


def test_the_scores_rank_a_planted_outlier_lowest() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 5
    bank = normalise(np.repeat(centres, 50, axis=0) + rng.normal(0, 0.3, (200, 16)))
    near = centres[[0, 1, 2, 3]] + rng.normal(0, 0.3, (4, 16))
    far = np.zeros((1, 16))
    far[0, 10:] = 5  # none of the clusters
    scores = knn_score(np.vstack([near, far]), bank)
    assert scores.argmin() == 4
    logits = np.array([[9.0, 0, 0], [0.1, 0, 0]])
    assert msp_score(logits, 1.0)[1] < msp_score(logits, 1.0)[0]
    assert energy_score(logits)[1] < energy_score(logits)[0]


def test_detector_report_uses_the_default_and_records_every_candidate() -> None:
    rng = np.random.default_rng(0)
    val = {"msp": rng.random(100), "energy": rng.normal(size=100), "knn": -rng.random(100)}
    report = detector_report(val, {name: s[:50] for name, s in val.items()})
    assert set(report["candidates"]) == {"msp", "energy", "knn"}
    assert report["threshold"] == report["candidates"][report["method"]]["threshold"]
    assert all(c["val_answered"] >= 0.95 for c in report["candidates"].values())
    without_bank = detector_report({"msp": val["msp"], "energy": val["energy"]}, {})
    assert without_bank["method"] in ("msp", "energy")


# ---------------------------------------------------------------------- with a trained run

@pytest.fixture(scope="module")
def run_id(shapes_workspace, train_shapes_run) -> str:
    return train_shapes_run(shapes_workspace, epochs=6, seed=0)


def test_training_records_the_temperature_ece_and_detector(shapes_workspace, run_id) -> None:
    folder = runs_dir() / run_id
    summary = shapes_workspace.get_run(run_id)["summary"]
    calibration = summary["calibration"]
    assert calibration["temperature"] > 0 and calibration["split"] == "test"
    assert 0 <= calibration["ece_after"] <= 1 and 0 <= calibration["ece_before"] <= 1
    card = json.loads((folder / MODEL_CARD).read_text())
    assert card["temperature"] == calibration["temperature"]
    assert card["unknown"]["threshold"] == summary["unknown"]["threshold"]
    assert summary["unknown"]["val_answered"] >= 0.95
    saved = json.loads((folder / CALIBRATION).read_text())
    assert saved["ece_after"] == calibration["ece_after"]
    assert len(saved["reliability"]["before"]["count"]) == 15
    bank = np.load(folder / FEATURE_BANK)  # a bounded sample of training images, float16
    assert bank.dtype == np.float16
    assert len(bank) == min(BANK_SIZE, len(load_dataset("shapes").indices("train")))
    assert np.allclose(np.linalg.norm(bank.astype(np.float32), axis=1), 1, atol=1e-2)
    predictions = np.load(folder / PREDICTIONS)
    hits = predictions["test_predicted"] == predictions["test_label"]
    assert hits.mean() == pytest.approx(summary["test_acc"])
    dataset = load_dataset("shapes")
    assert list(predictions["test_index"]) == dataset.indices("test")


def test_predict_flags_planted_out_of_distribution_images(shapes_workspace, run_id) -> None:
    loaded = load_model(run_id, shapes_workspace)
    assert loaded.detector is not None and loaded.temperature == \
        shapes_workspace.get_run(run_id)["summary"]["calibration"]["temperature"]
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
             for _ in range(8)]
    answers = loaded.predict(noise, 2)
    assert all(answer["unknown"] for answer in answers)
    assert all(answer["score"] < loaded.detector.threshold for answer in answers)
    dataset = load_dataset("shapes")
    val = [open_image(dataset.folder / dataset.items[i].file) for i in dataset.indices("val")]
    known = [not answer["unknown"] for answer in loaded.predict(val, 1)]
    assert np.mean(known) >= 0.95  # the threshold keeps 95% of validation answered


def test_probabilities_use_the_temperature(shapes_workspace, run_id) -> None:
    loaded = load_model(run_id, shapes_workspace)
    image = Image.new("RGB", (32, 32), (30, 200, 30))
    logits, _ = loaded.outputs([image])
    assert np.allclose(loaded.probabilities([image]), softmax(logits, loaded.temperature))
    top = loaded.top_k([image], 1)[0][0]
    assert top["prob"] == pytest.approx(softmax(logits, loaded.temperature).max())


def test_a_run_without_a_detector_answers_unknown_false(shapes_workspace, run_id) -> None:
    loaded = load_model(run_id, shapes_workspace)
    loaded.detector = None
    answer = loaded.predict([Image.new("RGB", (32, 32))], 1)[0]
    assert answer["unknown"] is False and answer["score"] is None
    rule = Detector("msp", 0.5, 1.0)
    assert list(rule.unknown(np.array([0.4, 0.6]))) == [True, False]


def test_compare_classifies_a_run_without_saved_predictions(shapes_workspace, run_id,
                                                            train_shapes_run) -> None:
    from core.analysis.paired import compare_runs

    older = train_shapes_run(shapes_workspace, seed=1)
    (runs_dir() / older / PREDICTIONS).unlink()  # as a run from before they were saved
    result = compare_runs(older, run_id, store=shapes_workspace)
    assert result["a"]["accuracy"] == pytest.approx(shapes_workspace.get_run(older)["test_acc"])
    assert result["b"]["accuracy"] == pytest.approx(shapes_workspace.get_run(run_id)["test_acc"])
    counts = result["counts"]
    assert sum(counts.values()) == result["images"] == len(load_dataset("shapes").indices("test"))
