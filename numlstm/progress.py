"""Progress display for ``fit``: a live bar with ETA and running loss/metrics (``verbose=1``,
drawn with rich in a terminal; one line per epoch elsewhere), one line per epoch
(``verbose=2``), or nothing (``verbose=0``)."""

from __future__ import annotations

import sys
import time


def format_logs(logs: dict) -> str:
    return " - ".join(f"{key}: {value:.4f}" for key, value in logs.items())


class EpochProgress:
    """Reports one epoch of ``steps`` batches."""

    def __init__(self, verbose: int, epoch: int, epochs: int, steps: int, file=None):
        self.verbose, self.epoch, self.epochs, self.steps = verbose, epoch, epochs, steps
        self.file = file if file is not None else sys.stdout
        self.start = time.perf_counter()
        self._progress = None
        if verbose == 1:
            from rich.console import Console
            console = Console(file=self.file)
            if console.is_terminal:
                self._progress = self._live_bar(console)
            else:
                # Not a terminal (a log file, CI): a live bar would only leave clutter there,
                # so report like verbose=2.
                self.verbose = 2

    def _live_bar(self, console):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)
        progress = Progress(
            TextColumn(f"Epoch {self.epoch + 1}/{self.epochs}"), BarColumn(bar_width=24),
            MofNCompleteColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("{task.fields[logs]}"), console=console, transient=False,
            refresh_per_second=8)
        progress.start()
        self._task = progress.add_task("train", total=self.steps, logs="")
        return progress

    def update(self, step: int, logs: dict) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, logs=format_logs(logs))

    def close(self, logs: dict) -> None:
        elapsed = time.perf_counter() - self.start
        if self._progress is not None:
            self._progress.update(self._task, completed=self.steps, logs=format_logs(logs))
            self._progress.stop()
        elif self.verbose == 2:
            print(f"Epoch {self.epoch + 1}/{self.epochs} - {elapsed:.1f}s - "
                  f"{format_logs(logs)}", file=self.file, flush=True)
