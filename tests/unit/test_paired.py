"""`compare RUN_A RUN_B`: fixed, broken and both-wrong images, McNemar's exact p-value, Wilson
intervals, and the refusals when the runs did not see the same images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from core.__main__ import main
from core.analysis.paired import (
    compare_runs,
    format_p,
    mcnemar_exact,
    verdict,
    wilson_interval,
)
from core.config import TrainConfig
from core.durable import write_json_atomic
from core.runs.record import new_run
from core.store import Store
from core.training.run_files import MODEL_CARD, PREDICTIONS
from core.workspace import runs_dir

CLASSES = ["cat", "dog", "fox"]


def test_mcnemar_exact_against_hand_computed_values() -> None:
    # 14 fixed, 3 broken: 2 · (C(17,0) + C(17,1) + C(17,2) + C(17,3)) / 2^17 = 1668 / 131072
    assert mcnemar_exact(14, 3) == pytest.approx(1668 / 131072)
    assert mcnemar_exact(3, 14) == mcnemar_exact(14, 3)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(1, 0) == 1.0


@pytest.mark.parametrize(("fixed", "broken"), [(0, 1), (2, 9), (10, 10), (40, 25), (120, 90)])
def test_mcnemar_exact_matches_scipys_binomial_test(fixed: int, broken: int) -> None:
    expected = binomtest(fixed, fixed + broken, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(fixed, broken) == pytest.approx(expected, rel=1e-9)


def test_wilson_interval_against_known_values() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(1.959964 ** 2 / (10 + 1.959964 ** 2), rel=1e-6)
    low, high = wilson_interval(81, 263)  # Wilson (1927) as statsmodels proportion_confint
    assert (low, high) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_verdict_names_the_better_run_only_when_significant() -> None:
    sentence, better = verdict("A", "B", 14, 3, mcnemar_exact(14, 3))
    assert sentence == "B is better: 14 fixed, 3 broken, p = 0.013." and better == "b"
    sentence, better = verdict("A", "B", 2, 12, mcnemar_exact(2, 12))
    assert sentence.startswith("A is better: 2 fixed, 12 broken") and better == "a"
    sentence, better = verdict("A", "B", 5, 3, mcnemar_exact(5, 3))
    assert sentence == "The difference is within noise (5 fixed, 3 broken, p = 0.73)."
    assert better is None and format_p(0.0001) == "p < 0.001"


def fake_run(store: Store, name: str, predicted: list[int], labels: list[int],
             data: str = "pets", content_hash: str = "h1", index: list[int] | None = None,
             ) -> str:
    """A run row with the files a finished run leaves: model.json and predictions.npz."""
    run_id = new_run(TrainConfig(data=data, model="tiny-cnn", name=name), store,
                     status="completed")
    folder = runs_dir() / run_id
    write_json_atomic(folder / MODEL_CARD, {"classes": CLASSES, "content_hash": content_hash,
                                            "data": data})
    index = index or list(range(len(labels)))
    np.savez(folder / PREDICTIONS, test_index=np.array(index), test_label=np.array(labels),
             test_predicted=np.array(predicted), test_prob=np.ones(len(labels)))
    return run_id


LABELS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
#          r  r  r  r  w  w  w  r  w  r     A: 6 right
A_PRED = [0, 1, 2, 0, 0, 0, 1, 1, 0, 0]
#          r  r  w  r  r  r  w  r  w  r     B: fixes 4 and 5, breaks 2; 6 and 8 stay wrong
B_PRED = [0, 1, 1, 0, 1, 2, 2, 1, 1, 0]


def test_compare_counts_a_hand_computed_example(studio_home) -> None:
    store = Store()
    a = fake_run(store, "a", A_PRED, LABELS)
    b = fake_run(store, "b", B_PRED, LABELS)
    result = compare_runs("a", "b", store=store)
    assert result["counts"] == {"fixed": 2, "broken": 1, "both_wrong": 2, "both_right": 5}
    assert [image["index"] for image in result["fixed"]] == [4, 5]
    assert [image["index"] for image in result["broken"]] == [2]
    assert [image["index"] for image in result["both_wrong"]] == [6, 8]
    assert result["fixed"][0] | {"file": None} == {"index": 4, "file": None, "label": "dog",
                                                   "a": "cat", "b": "dog"}
    assert result["p_value"] == pytest.approx(1.0)  # 2 vs 1: C(3,0)+C(3,1) = 4; 2·4/8 ≥ 1
    assert result["a"]["accuracy"] == 0.6 and result["b"]["accuracy"] == 0.7
    assert result["a"]["ci95"] == list(wilson_interval(6, 10))
    assert result["better"] is None and "within noise" in result["verdict"]
    assert (result["a"]["run_id"], result["b"]["run_id"]) == (a, b)


def test_a_significant_difference_names_the_better_run(studio_home) -> None:
    store = Store()
    labels = [0] * 20
    fake_run(store, "weak", [1] * 15 + [0] * 5, labels)
    strong = fake_run(store, "strong", [0] * 20, labels)
    result = compare_runs("weak", "strong", store=store)
    assert result["counts"]["fixed"] == 15 and result["counts"]["broken"] == 0
    assert result["p_value"] == pytest.approx(2 / 2 ** 15)
    assert result["better"] == strong and result["verdict"].startswith("strong is better")


def test_compare_refuses_runs_on_different_datasets(studio_home, capsys) -> None:
    store = Store()
    fake_run(store, "a", A_PRED, LABELS, data="pets")
    fake_run(store, "b", B_PRED, LABELS, data="cars")
    with pytest.raises(ValueError, match="same dataset and split"):
        compare_runs("a", "b", store=store)
    assert main(["compare", "a", "b", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "same dataset" in captured.err


def test_compare_refuses_runs_on_different_splits_or_versions(studio_home) -> None:
    store = Store()
    fake_run(store, "a", A_PRED, LABELS)
    fake_run(store, "b", B_PRED, LABELS, index=list(range(10, 20)))
    with pytest.raises(ValueError, match="different test splits"):
        compare_runs("a", "b", store=store)
    fake_run(store, "c", B_PRED, LABELS, content_hash="h2")
    with pytest.raises(ValueError, match="different versions"):
        compare_runs("a", "c", store=store)
    with pytest.raises(ValueError, match="--split"):
        compare_runs("a", "b", split="train", store=store)


def test_compare_command_prints_one_json_object(studio_home, capsys) -> None:
    store = Store()
    fake_run(store, "a", A_PRED, LABELS)
    fake_run(store, "b", B_PRED, LABELS)
    assert main(["compare", "a", "b", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["counts"]["fixed"] == 2 and payload["p_value"] == pytest.approx(1.0)
    assert set(payload) >= {"fixed", "broken", "both_wrong", "p_value", "a", "b", "verdict"}
