"""Widgets made from the training config's schema (core.config): a setting's label, help,
choices and range come from there, so the Train and Sweep forms never write them again.

Each widget keeps its value in session state under `<prefix>_<setting>` and survives a visit
to another page (persist_state)."""

from __future__ import annotations

import streamlit as st

from core.config import Setting, default_of, settings, value_type

KEEP = "session"  # widget values survive a visit to another page


def state_default(key: str, value: object) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def within_range(name: str, value: object) -> object:
    """A value clamped into its setting's range (a cloned run's, say); other values as given."""
    meta = settings().get(name)
    if meta is None or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    low = meta.low if meta.low is not None else value
    high = meta.high if meta.high is not None else value
    return value_type(name)(min(max(value, low), high))


def setting_widget(column, name: str, *, prefix: str = "train", label: str | None = None,
                   **options) -> object:
    """The widget of setting `name` in `column`: a checkbox for a switch, a select box for
    choices, a slider or number box within the setting's range, else a text box."""
    meta: Setting = settings()[name]
    key = f"{prefix}_{name}"
    state_default(key, default_of(name))
    common = {"key": key, "help": meta.help, "persist_state": KEEP, **options}
    label = label or meta.label
    kind = value_type(name)
    if kind is bool:
        return column.checkbox(label, **common)
    if meta.choices:
        return column.selectbox(label, meta.choices, **common)
    if kind in (int, float) and meta.low is not None and meta.high is not None:
        low, high = kind(meta.low), kind(meta.high)
        step = kind(meta.step) if meta.step is not None else None
        if meta.slider:
            return column.slider(label, low, high, step=step, **common)
        number_format = "%g" if kind is float else None
        if meta.unset:
            common["placeholder"] = meta.unset
        return column.number_input(label, low, high, step=step, format=number_format, **common)
    return column.text_input(label, **common)


def settings_row(names: tuple[str, ...], *, prefix: str = "train", columns: int = 3) -> None:
    """Several settings side by side, a row of `columns` at a time."""
    for start in range(0, len(names), columns):
        row = st.columns(columns)
        for column, name in zip(row, names[start:start + columns], strict=False):
            setting_widget(column, name, prefix=prefix)


def group_settings(group: str, *, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The settings of one schema group, in schema order, but those with widgets of their own."""
    return tuple(name for name, meta in settings().items()
                 if meta.group == group and name not in exclude)
