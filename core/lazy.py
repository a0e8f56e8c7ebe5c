"""Package facades that import on first use.

Each sub-package of core names its public API in `__all__` and serves those names from the
modules that define them, importing a module only when one of its names is first asked for.
So `from core.runs import submit` stays torch-free (the queue needs only the store), while
`from core.runs import execute_run` loads torch and the training loop. Inside a package,
modules import their siblings directly, never through the facade.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def facade(package: str, modules: dict[str, tuple[str, ...]],
           ) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """(`__all__`, `__getattr__`, `__dir__`) for `package`, whose public names are
    `modules[module]` in each of its modules."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # asked once, then a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(home) | set(vars(sys.modules[package])))

    return sorted(home), __getattr__, __dir__
