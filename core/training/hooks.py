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
    """A tqdm bar on stderr for the command line."""

    def __init__(self, total_epochs: int) -> None:
        self.total_epochs = total_epochs
        self.bar = None

    def on_start(self, info: dict) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=self.total_epochs, initial=info.get("resumed_from_epoch", 0),
                        unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def on_step(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {metrics['loss']:.4f} "
                                     f"{metrics['images_per_s']:.0f} img/s", refresh=True)

    def on_epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(f"epoch {epoch}: {format_metrics(metrics)}", file=sys.stderr)

    def on_end(self, result: dict) -> None:
        if self.bar is not None:
            self.bar.close()


def format_metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
