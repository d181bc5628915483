"""Where a study lives: in memory while it runs, in ``study.db`` (Optuna's SQLite storage) between batches.

The median pruner reads every trial of the study at each epoch of each
trial, and every report, attribute and outcome is a commit of its own: on
SQLite that cost a third of a 32-trial study (profiled: 1,300 commits,
each reading the trials back). So the live study is kept in Optuna's
in-memory storage, and its trials are copied to the file when a batch ends
and on Ctrl-C, in the order of their numbers, so that the file holds the
same trials under the same numbers and ``--resume`` continues the study.
A thread writes the file while the next batch trains (opening it and
writing its trials were 3.5 s of a 14 s study on a busy machine, most of it
waiting on the disk). ``trials.jsonl`` is written with the file, so the two
always agree. A
process killed in a batch loses that batch only: on ``--resume`` its
epochs are dropped from ``metrics.jsonl``, and its trial numbers are drawn
again.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.errors import DlcliError

STUDY_NAME = "dlcli"
STUDY_FILE = "study.db"


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise DlcliError("dlcli tune needs Optuna, which is not installed: pip install 'dlcli[tune]'.") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # dlcli prints its own table of trials
    return optuna


@dataclass
class StoredStudy:
    """The live study (in memory) and its copy in the tune folder, complete up to ``saved`` trials.

    The file is written by a thread of its own, in order (opening it imports SQLAlchemy and creates its
    tables; each trial is a commit): the next batch trains meanwhile. :meth:`close` waits for it.
    """

    study: Any  # optuna.Study on InMemoryStorage: the sampler and the pruner read this one
    tune_dir: Path
    direction: str
    saved: int = 0
    file: Any = None  # the same study in study.db, opened by the writer
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # trials.jsonl rows not yet written
    writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "dlcli-study-file"))
    writes: list[Future] = field(default_factory=list)

    @classmethod
    def open(cls, tune_dir: Path, direction: str, sampler, pruner) -> StoredStudy:
        """A live study with the trials of ``study.db`` (a resumed study's, read now; a new study's file is
        created by the writer), any left running closed as failed."""
        optuna = import_optuna()
        stored = cls(optuna.create_study(direction=direction, sampler=sampler, pruner=pruner), tune_dir, direction)
        if (tune_dir / STUDY_FILE).is_file():
            stored.open_file()
            close_abandoned(stored.file)  # left by a study file written before the live study moved to memory
            trials = stored.file.get_trials(deepcopy=False)
            stored.study.add_trials(trials)  # in order: the copies keep their numbers
            stored.saved = len(trials)
            forget_unsaved(tune_dir, len(trials))
        else:
            stored.writes.append(stored.writer.submit(stored.open_file))
        return stored

    def open_file(self) -> None:
        storage = f"sqlite:///{self.tune_dir / STUDY_FILE}"
        self.file = import_optuna().create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True,
                                                 direction=self.direction)

    def keep(self, row: dict[str, Any]) -> None:
        """Hold a finished trial's ``trials.jsonl`` row until the trial is saved."""
        self.rows[row["number"]] = row

    def save(self) -> None:
        """Have the trials not yet in the file (every one of them finished) and their rows written."""
        trials = self.study.get_trials(deepcopy=False)[self.saved:]
        rows = [self.rows.pop(trial.number) for trial in trials if trial.number in self.rows]  # none if abandoned
        self.saved += len(trials)
        self.writes.append(self.writer.submit(self.write, trials, rows))

    def write(self, trials: list, rows: list[dict[str, Any]]) -> None:
        for trial in trials:
            self.file.add_trial(trial)  # one commit each
        with (self.tune_dir / "trials.jsonl").open("a") as file:
            file.writelines(json.dumps(row, allow_nan=False, default=str) + "\n" for row in rows)

    def close(self) -> None:
        """Wait until everything saved is written; a failed write raises here."""
        self.writer.shutdown(wait=True)
        for write in self.writes:
            write.result()


def close_abandoned(study, numbers: set[int] | None = None) -> None:
    """Close trials still running (those of ``numbers``; all, when None) as failed; without an outcome of
    their own they do not count towards the study's trials."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if numbers is None or trial.number in numbers:
            study.tell(trial.number, state=TrialState.FAIL)


def forget_unsaved(tune_dir: Path, saved: int) -> None:
    """Drop the lines of trials numbered ``saved`` or more (a batch whose process was killed) from the
    folder's JSON-lines files: those numbers are drawn again."""
    for name, number_of in (("trials.jsonl", lambda row: row["number"]),
                            ("metrics.jsonl", lambda row: int(row["variant"].removeprefix("trial ")))):
        path = tune_dir / name
        if not path.is_file():
            continue
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.endswith("\n") and number_of(json.loads(line)) < saved]
        if len(kept) < len(lines):  # (a line without its end was cut off by the kill)
            path.write_text("".join(kept))
