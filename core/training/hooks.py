"""Hook points through which a training run reports progress and hears a stop request."""

from __future__ import annotations

import sys
import time
from pathlib import Path


class Hooks:
    """Override what you need; every method is optional."""

    def on_start(self, info: dict) -> None: ...

    def on_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None: ...

    def on_epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_end(self, result: dict) -> None: ...

    def should_stop(self) -> bool:
        return False


class HookList(Hooks):
    def __init__(self, hooks: list[Hooks]) -> None:
        self.hooks = hooks

    def on_start(self, info: dict) -> None:
        for hook in self.hooks:
            hook.on_start(info)

    def on_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        for hook in self.hooks:
            hook.on_step(step, epoch, metrics)

    def on_epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        for hook in self.hooks:
            hook.on_epoch(step, epoch, metrics)

    def on_end(self, result: dict) -> None:
        for hook in self.hooks:
            hook.on_end(result)

    def should_stop(self) -> bool:
        return any(hook.should_stop() for hook in self.hooks)


class LogFile(Hooks):
    """Plain-text log of the run, one line per epoch, for the Runs page's log tail."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, line: str) -> None:
        with open(self.path, "a") as handle:
            handle.write(time.strftime("%H:%M:%S ") + line + "\n")

    def on_start(self, info: dict) -> None:
        self.write("start: " + ", ".join(f"{k}={v}" for k, v in info.items()))

    def on_epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.write(f"epoch {epoch}: " + format_metrics(metrics))

    def on_end(self, result: dict) -> None:
        self.write(f"end: status={result['status']} best_val_acc={result['best_val_acc']} "
                   f"test_acc={result['test_acc']}" + (f" error={result['error']}"
                                                      if result.get("error") else ""))


class ProgressBar(Hooks):
    """Progress on stderr for the command line, counted in steps so that the first epoch of a
    large dataset shows movement and an ETA within seconds: a tqdm bar on a terminal, a plain
    line every LINE_SECONDS otherwise (a log file, CI). stdout (`--json`) stays untouched."""

    LINE_SECONDS = 5.0

    def __init__(self, total_epochs: int, stream=None) -> None:
        self.total_epochs = total_epochs
        self.stream = stream or sys.stderr
        self.bar = None
        self.steps_per_epoch = 1
        self.start = self.last_line = 0.0
        self.start_position = 0

    def on_start(self, info: dict) -> None:
        self.close()  # a retry after running out of memory starts again at a smaller batch
        self.steps_per_epoch = max(1, int(info.get("steps_per_epoch") or 1))
        self.start_position = info.get("resumed_from_epoch", 0) * self.steps_per_epoch
        self.start = self.last_line = time.monotonic()
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_steps, initial=self.start_position, unit="step",
                            file=self.stream, dynamic_ncols=True)

    @property
    def total_steps(self) -> int:
        return self.total_epochs * self.steps_per_epoch

    def on_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        position = min(self.total_steps, round(epoch * self.steps_per_epoch))
        status = (f"epoch {epoch:.2f}/{self.total_epochs} loss {metrics['loss']:.4f} "
                  f"{metrics['images_per_s']:,.0f} img/s")
        if self.bar is not None:
            self.bar.update(position - self.bar.n)
            self.bar.set_postfix_str(status, refresh=True)
        elif time.monotonic() - self.last_line >= self.LINE_SECONDS:
            self.last_line = time.monotonic()
            eta = eta_seconds(position - self.start_position, self.total_steps - position,
                              self.last_line - self.start)
            print(f"step {position:,}/{self.total_steps:,} {status}"
                  + (f" ETA {clock(eta)}" if eta is not None else ""), file=self.stream,
                  flush=True)

    def on_epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        line = f"epoch {epoch}: {format_metrics(metrics)}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def on_end(self, result: dict) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def eta_seconds(done: float, left: float, seconds: float) -> float | None:
    """Seconds left at the rate so far (None before anything was done)."""
    return left * seconds / done if done > 0 and seconds > 0 else None


def clock(seconds: float) -> str:
    """3725 → "1:02:05", 65 → "1:05"."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
