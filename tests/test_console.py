"""What a training run shows: Rich bars on a terminal (NO_COLOR honoured), plain lines elsewhere."""

from __future__ import annotations

import io
import re
import sys

from rich.console import Console

from dlcli.report.console import PlainReporter, RichReporter, make_console, make_reporter

COLOUR = re.compile(r"\x1b\[(3[0-9]|9[0-7]|38;)")  # foreground colour escapes


def record(epoch: int) -> dict:
    return {"epoch": epoch, "loss": 0.5 / epoch, "accuracy": 0.8, "val_loss": 0.6 / epoch, "val_accuracy": 0.75,
            "time_s": 0.1, "samples_per_s": 12345.0, "learning_rate": 1e-3}


def drive(reporter, epochs: int = 3, steps: int = 10, chunks: int = 4) -> None:
    """What the training loop does: chunks that may overshoot the real step count by padding."""
    reporter.start("demo", epochs, steps, 1000, "runs/demo/1")
    for epoch in range(1, epochs + 1):
        for _ in range(chunks):
            reporter.advance(-(-steps // chunks))
        reporter.epoch(record(epoch))
    reporter.note("early stopping: demo")
    reporter.close()


def terminal(width: int = 80) -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(file=stream, force_terminal=True, width=width, highlight=False), stream


def final_frame(text: str) -> str:
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)
    return "\n".join(line for chunk in plain.split("\r") for line in chunk.splitlines()[-4:])


def test_rich_reporter_shows_epoch_and_step_bars_with_loss_and_speed_in_80_columns(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    console, stream = terminal(80)
    reporter = RichReporter(console)
    drive(reporter)
    steps = reporter.progress.tasks[reporter.step_bar]
    assert steps.completed == steps.total == 10  # padding steps never push the bar past the epoch
    frame = final_frame(stream.getvalue())
    assert re.search(r"epoch .*3/3.*loss 0\.1667", frame)
    assert re.search(r"step .*10/10.*samples/s", frame)
    assert "early stopping: demo" in stream.getvalue()
    assert all(len(line) <= 80 for line in frame.splitlines())
    assert COLOUR.search(stream.getvalue())


def test_no_color_removes_colour_but_keeps_the_bars(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    console, stream = terminal()
    drive(RichReporter(console))
    assert not COLOUR.search(stream.getvalue())
    assert "samples/s" in stream.getvalue()


def test_plain_reporter_prints_one_line_per_epoch_and_thins_long_runs():
    stream = io.StringIO()
    drive(PlainReporter(Console(file=stream, width=200)), epochs=3)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "\x1b[" not in stream.getvalue()

    stream = io.StringIO()
    drive(PlainReporter(Console(file=stream, width=200)), epochs=1000, chunks=1)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("epoch ")]
    assert 25 <= len(lines) <= 30 and lines[-1].startswith("epoch 1000/1000")


def test_reporter_follows_the_stream():
    assert type(make_reporter()) is PlainReporter  # pytest's captured stdout is not a terminal
    assert make_reporter(json_mode=True).console.file is sys.stderr  # stdout is kept for the JSON


def test_plain_epoch_lines_fit_a_100_column_terminal_in_aligned_columns():
    """digits-cnn's metrics on a 100-column terminal: no line wraps, and each value sits in the same column."""
    console, stream = terminal(width=100)
    reporter = PlainReporter(console)
    reporter.start("digits-cnn", 40, 45, 1437, "runs/digits-cnn/1")
    for epoch in (1, 2, 10):
        reporter.epoch({"epoch": epoch, "loss": 2.3 / epoch, "accuracy": 0.1 * epoch, "val_loss": 2.2 / epoch,
                        "val_accuracy": 0.09 * epoch, "time_s": 0.1, "samples_per_s": 12006.0,
                        "learning_rate": 1e-3})
    lines = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", stream.getvalue()).splitlines()[1:]
    assert max(len(line) for line in lines) <= 100
    epoch_lines = [line for line in lines if line.startswith("epoch")]
    assert len(epoch_lines) == 3
    for name in ("val_accuracy", "samples/s"):
        columns = {line.find(name) for line in lines if name in line}
        assert len(columns) == 1, (name, lines)


def test_plain_epoch_lines_stay_one_line_each_in_a_log():
    stream = io.StringIO()
    reporter = PlainReporter(make_console(stream))  # not a terminal: a CI log or a pipe
    drive(reporter, epochs=2)
    assert sum(line.startswith("epoch") for line in stream.getvalue().splitlines()) == 2
    assert all("samples/s" in line for line in stream.getvalue().splitlines() if line.startswith("epoch"))
