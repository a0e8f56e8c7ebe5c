"""Names in the workspace: what is allowed, made from a file name, and the next free one."""

from __future__ import annotations

import pytest

from core.workspace import check_name, next_free_name, safe_name


def test_safe_name_turns_a_file_name_into_a_dataset_name() -> None:
    assert safe_name("My Photos (2).zip") == "My-Photos-2"
    assert safe_name("...zip") == "dataset"
    assert check_name(safe_name("Fotos: été 2024 (copie).zip")) == "Fotos-t-2024-copie"


def test_the_next_free_name_skips_the_taken_ones() -> None:
    assert next_free_name("fm-sweep-{n}", set()) == "fm-sweep-1"
    assert next_free_name("fm-sweep-{n}", {"fm-sweep-1", "fm-sweep-2"}) == "fm-sweep-3"
    assert next_free_name("pets-v{n}", ["pets-v2"], start=2) == "pets-v3"


def test_a_name_with_a_slash_or_a_dot_start_is_refused() -> None:
    for bad in ("a/b", ".hidden", "", "x" * 65):
        with pytest.raises(ValueError, match="not allowed"):
            check_name(bad)


def test_a_new_dataset_version_takes_the_next_free_number(studio_home) -> None:
    from core.data.catalog import free_version_name
    from core.workspace import datasets_dir

    for name in ("pets", "pets-v2"):
        (datasets_dir() / name).mkdir()
        (datasets_dir() / name / "manifest.json").write_text("{}")
    assert free_version_name("pets") == "pets-v3"
    assert free_version_name("pets-v2") == "pets-v3"
    assert free_version_name("cats-v") == "cats-v-v2", "not a version number: a new stem"
