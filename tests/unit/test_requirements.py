"""requirements.txt pins every dependency to a tested range, so a new release (Streamlit's
deprecations, say) cannot reach a fresh install untried."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def requirements() -> list[Requirement]:
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith(("#", "-"))]


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    for requirement in requirements():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators in ({">=", "<"}, {"=="}, {"~="}), \
            f"{requirement} needs a tested range such as >=X.Y.Z,<X.(Y+1)"


def test_the_installed_versions_are_inside_the_ranges() -> None:
    for requirement in requirements():
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), \
            f"{requirement.name} {installed} is outside {requirement.specifier}"


def test_streamlit_is_pinned_below_its_next_minor_release() -> None:
    [streamlit] = [r for r in requirements() if r.name == "streamlit"]
    assert re.fullmatch(r">=1\.\d+\.\d+,<1\.\d+|<1\.\d+,>=1\.\d+\.\d+", str(streamlit.specifier))
