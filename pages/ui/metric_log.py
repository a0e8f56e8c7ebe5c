"""A run's metric rows as the pages have drawn them so far: merged, de-duplicated, plottable.

Pure Python (no Streamlit): the Runs and Compare pages keep one `MetricLog` per run in the
session and feed it only the rows newer than `last_step` on every poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Point = tuple[float, float, float]  # (epoch, value, time)


@dataclass
class MetricLog:
    values: dict[str, dict[int, Point]] = field(default_factory=dict)  # name → step → point
    last_step: int = 0  # the highest step seen; the next poll asks for rows from here on

    def add(self, rows: Iterable[dict]) -> int:
        """Merge store rows ({step, name, epoch, value, time}); a row seen before is replaced,
        so asking again from `last_step` (inclusive) never duplicates. Returns rows merged."""
        count = 0
        for row in rows:
            step = int(row["step"])
            by_step = self.values.setdefault(row["name"], {})
            by_step[step] = (float(row["epoch"]), float(row["value"]), float(row["time"]))
            self.last_step = max(self.last_step, step)
            count += 1
        return count

    def names(self) -> list[str]:
        return sorted(self.values)

    def series(self, name: str, x: str = "step") -> tuple[list[float], list[float]]:
        """(xs, ys) of one metric in step order; x is "step", "epoch" or "seconds" (since the
        first row of the run)."""
        by_step = self.values.get(name, {})
        steps = sorted(by_step)
        ys = [by_step[step][1] for step in steps]
        if x == "epoch":
            return [by_step[step][0] for step in steps], ys
        if x == "seconds":
            start = self.first_time()
            return [by_step[step][2] - start for step in steps], ys
        return [float(step) for step in steps], ys

    def latest(self, name: str) -> float | None:
        by_step = self.values.get(name)
        return by_step[max(by_step)][1] if by_step else None

    def latest_point(self, name: str) -> Point | None:
        by_step = self.values.get(name)
        return by_step[max(by_step)] if by_step else None

    def first_time(self) -> float:
        times = [point[2] for by_step in self.values.values() for point in by_step.values()]
        return min(times) if times else 0.0

    def epochs_done(self) -> int:
        """Epochs with a validation result (what the accuracy chart shows)."""
        return len(self.values.get("epoch/val_acc", {}))

    def progress_epoch(self) -> float:
        """How far training got, in epochs (fractional while inside an epoch)."""
        points = [by_step[max(by_step)][0] for by_step in self.values.values() if by_step]
        return max(points, default=0.0)

    def epochs_per_second(self, since: float) -> float | None:
        """Training speed from the rows written at or after `since` (this attempt's start)."""
        points = sorted((point[2], point[0]) for name, by_step in self.values.items()
                        if not name.startswith("epoch/") for point in by_step.values()
                        if point[2] >= since)
        if len(points) < 2:
            return None
        seconds, gained = points[-1][0] - points[0][0], points[-1][1] - points[0][1]
        return gained / seconds if seconds > 0 and gained > 0 else None
