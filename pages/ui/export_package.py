"""The Export tab's model package (zip with model.onnx, model.json, predict.py, README), FP32
against INT8/FP16 with the images whose answer changed, and the Classify page's "Use this
model elsewhere" panel (the package download, the `serve` command, a `curl` line)."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import streamlit as st

from core.analysis.formats import WITHIN_POINTS, bench_formats
from core.data.dataset import DatasetError, load_dataset
from core.serving.export import card_file
from core.serving.package import build_package
from core.serving.quantize import MAX_LOSS_POINTS
from pages.ui.common import MISSING, plain, store, user_errors

PRECISIONS = {"fp32": "FP32 (full precision)", "int8": "INT8 (about 4× smaller)",
              "fp16": "FP16 (about 2× smaller)"}
GALLERY = 24  # changed images shown


def package_section(run: dict, folder: Path) -> None:
    """Build a package into `folder`; show the newest package's comparison and gallery."""
    st.markdown("**Model package**: one zip that runs anywhere with `pip install onnxruntime "
                "numpy pillow`: `model.onnx`, `model.json` (labels, preprocessing, metrics), "
                "`predict.py` (a table, or `--json`) and a README. A smaller model is measured "
                f"again on the test split and kept only when it loses at most {MAX_LOSS_POINTS:g} "
                "point of accuracy.")
    cols = st.columns([3, 1], vertical_alignment="bottom")
    precision = cols[0].segmented_control("Precision", list(PRECISIONS), default="int8",
                                          key="package_precision", required=True,
                                          format_func=PRECISIONS.get)
    if cols[1].button("Build package", key="package_go", icon=":material/package_2:",
                      width="stretch"):
        wanted = None if precision in (None, "fp32") else precision
        with user_errors("build the package"), st.spinner("Exporting, quantizing, measuring…"):
            result = build_package(run["run_id"], folder, wanted)
            report = result["quantization"]
            if report is None or report["accepted"]:
                st.success(f"Packaged {plain(Path(result['path']).name)} "
                           f"({result['precision'].upper()}).", icon=":material/verified:")
            else:
                st.warning(plain(report["verdict"]), icon=":material/warning:")
    card = newest_package_card(run["run_id"])
    if card and card.get("quantization"):
        comparison(card["quantization"])


def newest_package_card(run_id: str) -> dict | None:
    """model.json of the run's newest package still on disk (the card beside the zip)."""
    newest = newest_package(run_id)
    card = card_file(newest) if newest else None
    return json.loads(card.read_text()) if card and card.is_file() else None


def comparison_rows(report: dict) -> list[dict]:
    """FP32 against the variant: accuracy, file size and single-image latency."""
    kind = report["kind"]
    rows = []
    for name in ("fp32", kind):
        side = report.get(name)
        if side:
            rows.append({"model": name.upper(), "test accuracy": f"{side['accuracy']:.2%}",
                         "file": f"{side['size_bytes'] / 1e6:.2f} MB",
                         "latency p50": f"{side['p50_ms']:.2f} ms",
                         "latency p90": f"{side['p90_ms']:.2f} ms"})
    return rows


def comparison(report: dict) -> None:
    kind = report["kind"].upper()
    st.markdown(f"**FP32 against {kind}** (newest package)")
    (st.caption if report["accepted"] else st.warning)(plain(report["verdict"]))
    rows = comparison_rows(report)
    if rows:
        st.dataframe(rows, hide_index=True, placeholder=MISSING, width="stretch")
    changed = report.get("changed") or []
    if not changed:
        return
    st.markdown(f"Images whose answer changed ({report.get('changed_count', len(changed))})")
    folder = dataset_folder(report.get("data"))
    cols = st.columns(6)
    for index, change in enumerate(changed[:GALLERY]):
        caption = (f"true {change['label']} · FP32 {change['fp32']} → "
                   f"{kind} {change[report['kind']]}")
        path = folder / change["file"] if folder else None
        with cols[index % 6]:
            if path and path.is_file():
                st.image(str(path), caption=caption, width="stretch")
            else:
                st.caption(plain(f"{change['file']}: {caption}"))


def dataset_folder(name: str | None) -> Path | None:
    try:
        return load_dataset(name or "").folder
    except (DatasetError, ValueError):
        return None


def formats_section(run: dict) -> None:
    """`bench formats` from the page, and the run's last table."""
    st.markdown(f"**Formats compared**: accuracy on the test split, latency of one image, "
                f"images/s at batch 32 and file size for every format; ★ marks the fastest "
                f"within {WITHIN_POINTS:g} points of PyTorch FP32. The command line: "
                f"`python -m core bench formats --run {run['run_id']}`.")
    if st.button("Benchmark formats", key="formats_go", icon=":material/speed:"):
        with user_errors("benchmark the formats"), st.spinner("Exporting and timing…"):
            bench_formats(run["run_id"], repeats=50)
    fresh = store().get_run(run["run_id"]) or {}
    result = (fresh.get("summary") or {}).get("format_bench")
    if result:
        st.dataframe(format_rows(result), hide_index=True, placeholder=MISSING, width="stretch")
        st.caption(f"{result['images']} {result['split']} images; CPU, {result['threads']} "
                   f"threads of {result['cpus']} cores; measured "
                   + time.strftime("%Y-%m-%d %H:%M", time.localtime(result["at"])) + ".")


def format_rows(result: dict) -> list[dict]:
    return [{"format": ("★ " if row["best"] else "") + row["format"],
             "test accuracy": f"{row['accuracy']:.2%}",
             "p50 (batch 1)": f"{row['p50_ms']:.2f} ms", "p90 (batch 1)": f"{row['p90_ms']:.2f} ms",
             "images/s (batch 32)": f"{row['images_per_s']:,.0f}",
             "file": f"{row['size_mb']:.2f} MB", "device": row["device"]}
            for row in result["rows"]]


def elsewhere_panel(run: dict) -> None:
    """The package download, the `serve` command and a `curl` line for this run."""
    run_id = run["run_id"]
    with st.expander("Use this model elsewhere", icon=":material/rocket_launch:"):
        newest = newest_package(run_id)
        if newest:
            st.download_button("Download the model package", functools.partial(newest.read_bytes),
                               file_name=newest.name, mime="application/zip",
                               key="elsewhere_package", icon=":material/download:",
                               on_click="ignore")
            st.caption("Unzip it, then `python predict.py photo.jpg` (onnxruntime, numpy and "
                       "pillow are all it needs).")
        else:
            st.caption("Build a package on the Export tab first, or on the command line: "
                       f"`python -m core export --run {run_id} --format package --quantize int8 "
                       "--out model.zip`.")
        st.markdown("Serve it over HTTP (OpenAPI docs at `/docs`):")
        st.code(f"python -m core serve --run {run_id} --port 8000", language="bash")
        st.markdown("Ask it from any program:")
        st.code("curl -F file=@photo.jpg http://127.0.0.1:8000/predict", language="bash")


def newest_package(run_id: str) -> Path | None:
    fresh = store().get_run(run_id) or {}
    exports = (fresh.get("summary") or {}).get("exports") or {}
    packages = [(Path(path), entry.get("at") or 0) for path, entry in exports.items()
                if entry.get("format") == "package" and Path(path).is_file()]
    return max(packages, key=lambda item: item[1])[0] if packages else None
