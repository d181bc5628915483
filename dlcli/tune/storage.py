"""Where a study lives: in memory while it runs, in ``study.db`` (Optuna's SQLite storage) between batches.

The median pruner reads every trial of the study at each epoch of each
trial, and every report, attribute and outcome is a commit of its own: on
SQLite that cost a third of a 32-trial study (profiled: 1,300 commits,
each reading the trials back). So the live study is kept in Optuna's
in-memory storage, and its trials are copied to the file when a batch ends
and on Ctrl-C, in the order of their numbers, so that the file holds the
same trials under the same numbers and ``--resume`` continues the study.
``trials.jsonl`` is written with the file, so the two always agree. A
process killed in a batch loses that batch only: on ``--resume`` its
epochs are dropped from ``metrics.jsonl``, and its trial numbers are drawn
again.
"""

from __future__ import annotations

import json
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
    """The live study (in memory) and its copy in the tune folder, complete up to ``saved`` trials."""

    study: Any  # optuna.Study on InMemoryStorage: the sampler and the pruner read this one
    file: Any  # the same study in study.db
    tune_dir: Path
    saved: int
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # trials.jsonl rows not yet written

    @classmethod
    def open(cls, tune_dir: Path, direction: str, sampler, pruner) -> StoredStudy:
        """Load (or create) ``study.db`` and copy its trials into a live study, closing any left running."""
        optuna = import_optuna()
        file = optuna.create_study(study_name=STUDY_NAME, storage=f"sqlite:///{tune_dir / STUDY_FILE}",
                                   load_if_exists=True, direction=direction)
        close_abandoned(file)  # left by a study file written before the live study moved to memory
        trials = file.get_trials(deepcopy=False)
        study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
        study.add_trials(trials)  # in order: the copies keep their numbers
        forget_unsaved(tune_dir, len(trials))
        return cls(study, file, tune_dir, len(trials))

    def keep(self, row: dict[str, Any]) -> None:
        """Hold a finished trial's ``trials.jsonl`` row until the trial is saved."""
        self.rows[row["number"]] = row

    def save(self) -> None:
        """Copy the trials not yet in the file (every one of them finished) and write their rows."""
        with (self.tune_dir / "trials.jsonl").open("a") as rows:
            for trial in self.study.get_trials(deepcopy=False)[self.saved:]:
                self.file.add_trial(trial)  # one commit each: a Ctrl-C here leaves a whole prefix saved
                self.saved += 1
                if trial.number in self.rows:  # a trial abandoned by Ctrl-C has no row
                    rows.write(json.dumps(self.rows.pop(trial.number), allow_nan=False, default=str) + "\n")


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
