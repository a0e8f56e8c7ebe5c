"""The Classify page's "Classify many" tab: a zip or a folder → a table of predictions and a
CSV; accuracy and a confusion matrix when the files sit in folders named like the classes."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

import streamlit as st

from core.serving.batch import classify_archive, rows_to_csv
from core.serving.infer import LoadedModel
from pages.ui.charts import confusion_figure
from pages.ui.common import IMAGE_TYPES, MISSING, pct, user_errors

RESULT_KEY = "classify_many_result"
TOP_K = 3


def folder_as_zip(files: list) -> bytes:
    """A folder upload ("folder/class/image.png" names) as an uncompressed zip, so it goes
    through the same checks as a zip upload. A repeated name keeps its first file."""
    buffer = io.BytesIO()
    seen: set[str] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            if file.name not in seen:
                seen.add(file.name)
                archive.writestr(file.name, file.getvalue())
    return buffer.getvalue()


def source_picker() -> tuple[str, object, str] | None:
    """(a name for the upload, its zip bytes, which upload it is), or None while nothing is
    uploaded. The third is the uploads' ids: a result belongs to the upload it was made from."""
    kind = st.radio("Images from", ["A zip", "A folder"], horizontal=True, key="many_source")
    if kind == "A zip":
        upload = st.file_uploader("A zip of images (in class folders to get an accuracy)",
                                  type=["zip"], key="many_zip")
        return (upload.name, upload.getvalue(), upload.file_id) if upload else None
    files = st.file_uploader("A folder of images (with one sub-folder per class to get an "
                             "accuracy)", type=IMAGE_TYPES, accept_multiple_files="directory",
                             key="many_folder")
    if not files:
        return None
    top = PurePosixPath(files[0].name).parts[0] if "/" in files[0].name else "folder"
    return top, folder_as_zip(files), ",".join(file.file_id for file in files)


def many_tab(run: dict, model: LoadedModel) -> None:
    picked = source_picker()
    clicked = st.button("Classify all", type="primary", disabled=picked is None,
                        key="many_go", icon=":material/table_view:")
    if clicked and picked:
        name, source, upload_id = picked
        bar = st.progress(0.0, text="Classifying…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total if total else 1.0, text=f"Classifying: {done}/{total}")

        with user_errors("classify these images"):
            result = classify_archive(model, source, top_k=TOP_K, progress=progress)
            st.session_state[RESULT_KEY] = {"run_id": run["run_id"], "name": name,
                                            "upload": upload_id, "result": result}
        bar.empty()
    kept = st.session_state.get(RESULT_KEY)
    current = picked[2] if picked else None  # a newly chosen upload hides the old result
    if kept and kept["run_id"] == run["run_id"] and kept.get("upload") == current:
        show_result(kept["name"], kept["result"])


def show_result(name: str, result: dict) -> None:
    rows, skipped = result["rows"], result["skipped"]
    cols = st.columns(5)
    cols[0].metric("Images classified", f"{len(rows):,}")
    cols[1].metric("None of the classes I know", f"{result.get('unknown', 0):,}",
                   help="images that look like none of the training images (the run's "
                        "unknown-input detector); their guesses are in the table all the same")
    cols[2].metric("Skipped", f"{len(skipped):,}")
    cols[3].metric("With a known class folder", f"{result['labelled']:,}")
    cols[4].metric("Accuracy", pct(result["accuracy"]))
    stem = PurePosixPath(name).stem or "images"
    st.download_button("Download the predictions (CSV)", rows_to_csv(rows),
                       file_name=f"{stem}-predictions.csv", mime="text/csv", key="many_csv",
                       icon=":material/download:", on_click="ignore")
    if not rows:
        st.warning("No image in the upload could be classified; see the skipped files below.")
    elif result["accuracy"] is None:
        st.info("No file sits in a folder named like one of the model's classes, so there is "
                "no accuracy; the table has the predictions.")
    else:
        scored(result)
    if rows:
        st.dataframe(prediction_rows(rows), hide_index=True, width="stretch", placeholder=MISSING,
                     column_config={"probability": st.column_config.ProgressColumn(
                         "probability", format="percent", min_value=0.0, max_value=1.0)})
    if skipped:
        with st.expander(f"Skipped files ({len(skipped)})"):
            st.dataframe(skipped, hide_index=True, width="stretch", placeholder=MISSING,
                         column_config={"file": "File", "reason": "Why it was skipped"})


def scored(result: dict) -> None:
    left, right = st.columns([3, 2])
    left.plotly_chart(confusion_figure(
        result["confusion"], result["classes"],
        title=f"Confusion matrix ({result['labelled']:,} labelled images)"), key="many_confusion")
    right.dataframe(
        [{"class": row["class"], "images": row["support"], "accuracy": row["accuracy"],
          "precision": row["precision"], "F1": row["f1"]}
         for row in result["per_class"] if row["support"]],
        hide_index=True, width="stretch", placeholder=MISSING,
        column_config={key: st.column_config.NumberColumn(key, format="percent")
                       for key in ("accuracy", "precision", "F1")})


def prediction_rows(rows: list[dict]) -> list[dict]:
    table = []
    for row in rows:
        truth = row["true_label"]
        table.append({"file": row["file"], "predicted": row["label"],
                      "known": "no: none of the classes" if row.get("unknown") else "yes",
                      "probability": row["prob"],
                      "true class": truth or "", "correct": "" if truth is None else
                      ("yes" if truth == row["label"] else "no"),
                      "top 3": ", ".join(f"{t['label']} {t['prob']:.0%}" for t in row["top"])})
    return table
