"""`data dedupe`: a NEW dataset version without the extra copies of each duplicate group found
at import. The original dataset is never modified."""

from __future__ import annotations

from core.analysis.error_analysis import save_dataset_version
from core.data.catalog import free_version_name, registered
from core.data.dataset import Dataset, DatasetError, load_dataset
from core.data.duplicates import extra_copies
from core.store import Store


def dedupe(name: str, keep: str = "first", new_name: str | None = None,
           store: Store | None = None) -> tuple[Dataset, list[int]]:
    """Save `new_name` (default: the next free `name-vN`) with one copy per duplicate group,
    the first in upload order; returns the new dataset and the removed item indices."""
    source = load_dataset(name)
    if not source.duplicates:
        raise DatasetError(f"Dataset {name!r} has no duplicates recorded at import; there is "
                           "nothing to remove (datasets imported before duplicates were "
                           "checked: import the upload again).")
    remove = extra_copies(source.duplicates, keep)
    new_name = new_name or free_version_name(name)
    dataset = save_dataset_version(name, new_name, remove=set(remove), store=store)
    dataset.layout = source.layout
    dataset.notes = [f"Version of {name} without {len(remove)} extra copies from "
                     f"{len(source.duplicates)} duplicate group(s); kept the {keep} of each."]
    dataset.save()
    return registered(dataset, None), remove
