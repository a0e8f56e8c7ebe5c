"""The Error analysis page's data map: drawn on request from a trained run's test images, a
point per image; the clicked point's image with its given and predicted label."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.analysis.data_map import data_map

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def test_the_map_is_drawn_on_request_and_a_clicked_point_shows_its_image(trained_run) -> None:
    at = AppTest.from_file(APP, default_timeout=90).run()
    at.switch_page("pages/mistakes.py").run()
    assert not at.exception, at.exception
    assert not at.get("plotly_chart")[1:], "only the confusion matrix before the map is asked"
    at.button(key="datamap_draw").click().run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the confusion matrix and the map
    assert "Click a point to see its image." in "\n".join(c.value for c in at.caption)
    frame = data_map(trained_run, "test")
    wrong = frame[~frame["correct"]]
    row = (wrong if len(wrong) else frame).iloc[0]
    at.session_state["datamap_picked"] = {trained_run: int(row["index"])}
    at.run()
    assert not at.exception, at.exception
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert f"given {row['given']}" in shown and f"predicted **{row['predicted']}**" in shown
    at.radio(key="datamap_method").set_value("tsne").run()
    assert len(at.get("plotly_chart")) == 1, "another projection waits for its button"
