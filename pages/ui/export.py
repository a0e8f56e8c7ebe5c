"""The Classify page's "Export" tab: ONNX / TorchScript / safetensors into the run's
`exports/` folder, the parity check's verdict, the model card, and download buttons."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import streamlit as st

from core.runs.record import run_folder
from core.serving.export import FORMATS, card_file, export_run
from pages.ui.common import count, plain, store, user_errors
from pages.ui.export_package import formats_section, package_section

FORMAT_LABELS = {"onnx": "ONNX (dynamic batch)", "torchscript": "TorchScript",
                 "safetensors": "safetensors (for Import)",
                 "package": "Package (zip: ONNX, predict.py, README)"}
MIME = {".onnx": "application/octet-stream", ".pt": "application/octet-stream",
        ".safetensors": "application/octet-stream", ".json": "application/json",
        ".zip": "application/zip"}


def exports_folder(run_id: str) -> Path:
    """The run's exports/ folder, made first: export_run names a file after a missing path."""
    folder = run_folder(run_id) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def parity_sentence(parity: dict) -> str:
    """"Parity passed: …" or "Parity failed: …", with the numbers behind it."""
    source = "validation" if parity.get("inputs") == "validation" else "random"
    images = f"{parity.get('images', 0)} {source}"
    if parity.get("max_abs_diff") is None:
        return f"Parity failed: {parity.get('error', 'no comparable output')} ({images} images)."
    verdict = "passed" if parity["passed"] else "failed"
    return (f"Parity {verdict}: largest logit difference from PyTorch {parity['max_abs_diff']:.1e} "
            f"(tolerance {parity['tolerance']:g}) on {images} images; the top class agrees on "
            f"{parity['top1_agreement']:.0%}.")


def export_tab(run: dict) -> None:
    st.caption("Writes the model into the run's folder (exports/), runs it on real validation "
               "images next to the PyTorch model (ONNX Runtime for ONNX), and records the "
               "result on the run. A model card (JSON: classes, preprocessing, metrics, parity) "
               "goes beside every export. The command line does the same: "
               f"`python -m core export --run {run['run_id']} --format onnx --out FILE`.")
    cols = st.columns([3, 1], vertical_alignment="bottom")
    fmt = cols[0].segmented_control("Format", FORMATS, default="onnx", key="export_format",
                                    format_func=FORMAT_LABELS.get, required=True)
    if cols[1].button("Export", type="primary", key="export_go", icon=":material/ios_share:",
                      width="stretch"):
        with user_errors("export the model"), st.spinner("Exporting and checking parity…"):
            result = export_run(run["run_id"], fmt or "onnx", exports_folder(run["run_id"]))
            say = st.success if result["parity"]["passed"] else st.error
            say(f"Exported {plain(Path(result['path']).name)}. "
                + parity_sentence(result["parity"]), icon=":material/verified:")
    with st.container(border=True):
        package_section(run, exports_folder(run["run_id"]))
    with st.container(border=True):
        formats_section(run)
    exports = recorded_exports(run["run_id"])
    if not exports:
        st.info("No export of this run yet.")
    for index, (path, entry) in enumerate(exports):
        export_row(path, entry, index)


def recorded_exports(run_id: str) -> list[tuple[Path, dict]]:
    """(file, entry) for each export recorded on the run whose file is still there, newest
    first."""
    fresh = store().get_run(run_id) or {}
    exports = (fresh.get("summary") or {}).get("exports") or {}
    kept = [(Path(path), entry) for path, entry in exports.items() if Path(path).is_file()]
    return sorted(kept, key=lambda item: -(item[1].get("at") or 0))


def export_row(path: Path, entry: dict, index: int) -> None:
    parity = entry.get("parity") or {}
    card = Path(entry.get("card") or card_file(path))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.get("at") or 0))
    with st.container(border=True):
        cols = st.columns([4, 1, 1], vertical_alignment="center")
        mark = ":material/check_circle:" if parity.get("passed") else ":material/error:"
        cols[0].markdown(f"{mark} **{plain(path.name)}** · {FORMAT_LABELS.get(entry['format'])} · "
                         f"{count(path.stat().st_size)}B · {when}")
        cols[0].caption(plain(parity_sentence(parity)) if parity else "No parity result.")
        cols[1].download_button("Model", functools.partial(path.read_bytes), file_name=path.name,
                                mime=MIME.get(path.suffix, "application/octet-stream"),
                                key=f"export_file_{index}", icon=":material/download:",
                                on_click="ignore", width="stretch")
        if card.is_file():
            cols[2].download_button("Card", functools.partial(card.read_bytes),
                                    file_name=card_file(path).name,  # one per format
                                    mime="application/json",
                                    key=f"export_card_{index}", icon=":material/description:",
                                    on_click="ignore", width="stretch")
            with st.expander("Model card"):
                st.json(card.read_text(), expanded=1)
