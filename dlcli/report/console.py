"""What a run shows while it trains: a live Rich display on a terminal, one
plain line per epoch otherwise (CI, pipes), always on the chosen stream."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

HIDDEN_KEYS = {"epoch", "time_s", "samples_per_s", "learning_rate"}


def format_metrics(record: dict[str, Any]) -> str:
    parts = [f"{key} {value:.4f}" for key, value in record.items()
             if key not in HIDDEN_KEYS and isinstance(value, (int, float))]
    return "  ".join(parts)


def make_console(stream: TextIO | None = None) -> Console:
    return Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)


class PlainReporter:
    """One line per epoch: readable in CI logs and easy to grep."""

    def __init__(self, console: Console):
        self.console = console
        self.epochs = 0

    def start(self, name: str, epochs: int, steps_per_epoch: int, examples: int, run_dir: str) -> None:
        self.epochs = epochs
        self.console.print(f"training {name}: {examples} examples, {steps_per_epoch} steps/epoch, up to {epochs} "
                           f"epochs -> {run_dir}")

    def advance(self, steps: int) -> None:
        pass

    def epoch(self, record: dict[str, Any]) -> None:
        every = max(1, self.epochs // 25)  # long runs of tiny epochs print about 25 lines
        if record["epoch"] % every and record["epoch"] not in (1, self.epochs):
            return
        self.console.print(f"epoch {record['epoch']}/{self.epochs}  {format_metrics(record)}  "
                           f"{record['samples_per_s']:,.0f} samples/s  {record['time_s']:.2f}s")

    def note(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        pass


class RichReporter(PlainReporter):
    """Epoch and step bars with samples/s and the latest metrics."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False)

    def start(self, name: str, epochs: int, steps_per_epoch: int, examples: int, run_dir: str) -> None:
        super().start(name, epochs, steps_per_epoch, examples, run_dir)
        self.progress.start()
        self.epoch_bar = self.progress.add_task("epochs", total=epochs, info="")
        self.step_bar = self.progress.add_task("steps", total=steps_per_epoch, info="")

    def advance(self, steps: int) -> None:
        self.progress.advance(self.step_bar, steps)

    def epoch(self, record: dict[str, Any]) -> None:
        self.progress.update(self.epoch_bar, completed=record["epoch"], info=format_metrics(record))
        self.progress.update(self.step_bar, completed=0, info=f"{record['samples_per_s']:,.0f} samples/s")

    def note(self, text: str) -> None:
        self.progress.console.print(text)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(json_mode: bool = False, quiet: bool = False):
    """Rich on a terminal, plain lines otherwise; on stderr when stdout carries JSON."""
    stream = sys.stderr if json_mode else sys.stdout
    console = make_console(stream)
    if quiet:
        console.quiet = True
    return RichReporter(console) if console.is_terminal and not quiet else PlainReporter(console)
