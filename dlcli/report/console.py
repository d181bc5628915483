"""What a run shows while it trains: a live Rich display on a terminal, one
plain line per epoch otherwise (CI, pipes), always on the chosen stream."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

HIDDEN_KEYS = {"epoch", "time_s", "samples_per_s", "learning_rate"}


def format_metrics(record: dict[str, Any]) -> str:
    parts = [f"{key} {value:.4f}" for key, value in record.items()
             if key not in HIDDEN_KEYS and isinstance(value, (int, float))]
    return "  ".join(parts)


def epoch_cells(record: dict[str, Any], epochs: int) -> list[str]:
    """The cells of a plain epoch line, each as wide in every epoch so that the lines align in columns."""
    metrics = [f"{key} {value:8.4f}" for key, value in record.items()
               if key not in HIDDEN_KEYS and isinstance(value, (int, float))]
    return [f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}", *metrics,
            f"{record['samples_per_s']:>9,.0f} samples/s", f"{record['time_s']:6.2f}s"]


def fit_columns(cells: list[str], width: int | None) -> list[str]:
    """``cells`` joined by two spaces, continued on indented lines so that none is wider than ``width``."""
    indent = " " * (len(cells[0]) + 2)
    lines = [cells[0]]
    for cell in cells[1:]:
        if width is not None and len(lines[-1]) + 2 + len(cell) > width and lines[-1].strip():
            lines.append(indent + cell)
        else:
            lines[-1] += "  " + cell
    return lines


def headline(record: dict[str, Any], room: int) -> str:
    """As many of loss, validation loss and one validation metric as fit in ``room`` characters."""
    keys = ["loss", "val_loss"] if "val_loss" in record else ["loss", "accuracy"]
    keys += [k for k in record if k.startswith("val_") and k != "val_loss"][:1]
    text = ""
    for key in keys:
        if isinstance(record.get(key), (int, float)):
            part = f"{key} {record[key]:.4f}"
            if text and len(text) + 2 + len(part) > room:
                break
            text = f"{text}  {part}" if text else part
    return text


def make_console(stream: TextIO | None = None) -> Console:
    return Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)


class PlainReporter:
    """One line per epoch: readable in CI logs and easy to grep."""

    def __init__(self, console: Console):
        self.console = console
        self.epochs = 0
        self.first = True  # the first epoch a run shows is always printed

    def start(self, name: str, epochs: int, steps_per_epoch: int, examples: int, run_dir: str) -> None:
        self.epochs = epochs
        self.first = True
        self.console.print(f"training {name}: {examples} examples, {steps_per_epoch} steps/epoch, up to {epochs} "
                           f"epochs -> {run_dir}")

    def advance(self, steps: int) -> None:
        pass

    def epoch(self, record: dict[str, Any]) -> None:
        first, self.first = self.first, False
        every = max(1, self.epochs // 25)  # long runs of tiny epochs print about 25 lines
        if record["epoch"] % every and record["epoch"] not in (1, self.epochs) and not first:
            return
        cells = epoch_cells(record, self.epochs)
        width = self.console.width if self.console.is_terminal else None  # a log or a pipe: one line to grep
        for line in fit_columns(cells, width):
            self.console.print(line)

    def note(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        pass


class QuietReporter(PlainReporter):
    """Prints nothing: the processes of a multi-process run other than process 0."""

    def __init__(self):
        super().__init__(Console(quiet=True))


class RichReporter(PlainReporter):
    """Live epoch and step bars with the latest loss and samples/s; the full metrics
    line of each epoch (thinned like :class:`PlainReporter`) scrolls above them."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.progress = Progress(
            TextColumn("[bold]{task.description:<5}"), BarColumn(bar_width=None), MofNCompleteColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=console, expand=True, redirect_stdout=False, redirect_stderr=False)
        self.samples_per_step = 1.0
        self.epoch_started, self.epoch_done = time.perf_counter(), False

    def start(self, name: str, epochs: int, steps_per_epoch: int, examples: int, run_dir: str) -> None:
        super().start(name, epochs, steps_per_epoch, examples, run_dir)
        self.samples_per_step = examples / max(1, steps_per_epoch)
        self.epoch_bar = self.progress.add_task("epoch", total=epochs, info="")
        self.step_bar = self.progress.add_task("step", total=steps_per_epoch, info="")
        self.epoch_started = time.perf_counter()
        self.progress.start()

    def advance(self, steps: int) -> None:
        if self.epoch_done:  # reset here, not at the epoch's end, so the last epoch's bar stays full
            self.progress.reset(self.step_bar, info=self.progress.tasks[self.step_bar].fields["info"])
            self.epoch_done = False
        task = self.progress.tasks[self.step_bar]
        # The last chunk of an epoch may hold padding steps; never count past the epoch.
        done = min(task.total, task.completed + steps)
        seconds = time.perf_counter() - self.epoch_started
        rate = done * self.samples_per_step / seconds if seconds > 0 else 0.0
        self.progress.update(self.step_bar, completed=done, info=f"{rate:,.0f} samples/s")

    def epoch(self, record: dict[str, Any]) -> None:
        super().epoch(record)  # the history lines print above the live bars
        self.progress.update(self.epoch_bar, completed=record["epoch"], info=headline(record, room=self.console.width - 45))
        self.progress.update(self.step_bar, info=f"{record['samples_per_s']:,.0f} samples/s")
        self.epoch_started, self.epoch_done = time.perf_counter(), True

    def note(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(json_mode: bool = False, quiet: bool = False):
    """Rich on a terminal, plain lines otherwise; on stderr when stdout carries JSON."""
    stream = sys.stderr if json_mode else sys.stdout
    console = make_console(stream)
    if quiet:
        console.quiet = True
    return RichReporter(console) if console.is_terminal and not quiet else PlainReporter(console)
