"""`odyssey run --pack K` (issue 24): a worker trains up to K claimed slots of one cell in lockstep.

The first slot is claimed as ever; the others are claimed one by one through the same atomic claim
whenever a place of the pack is free, only among the cell's queued slots that fit the pack (below),
so a slot that does not fit stays queued for a pack of its own, untouched. Each trial is prepared
and finished exactly as a trial trained alone (trial.py): its own heartbeat, callbacks, checkpoint
and stored result; training.pack.lockstep trains them, each what `train` makes of it alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from ..model.pack import PackedNetwork
from ..tasks import Task
from ..training.config import TrainingConfig, space_setting
from ..training.pack import SHARED, Member, lockstep
from .queue import Fits
from .space import trial_settings
from .studyfile import StudyFile
from .trial import Prepared, TrialOutcome, finish, give_back, prepare

Claim = Callable[[Fits], optuna.Trial | object]  # the cell's next queued trial that fits: a Trial, or anything else


def fits(study_file: StudyFile, first: TrainingConfig) -> Fits:
    """Whether a queued slot can join a pack that trains like `first`, by its queued parameters; a slot queued
    empty (TPE fills it when taken) joins only where the space searches none of what a pack shares."""
    searched = [key for key in study_file.space if space_setting(key).field in SHARED]

    def fit(queued: FrozenTrial) -> bool:
        if any(key not in queued.params for key in searched):
            return False
        config = trial_settings(study_file.training, queued.params)
        return all(getattr(config, name) == getattr(first, name) for name in SHARED)

    return fit


def run_pack(
    first: optuna.Trial,
    *,
    size: int,
    claim: Claim,
    study_file: StudyFile,
    task: Task,
    variant: str,
    checkpoint_dir: Path,
    stop: threading.Event,
) -> list[TrialOutcome]:
    """Train `first` and, as places free, the cell's next slots that fit it, up to `size` at once; each stored
    as run_trial stores it. A stop gives every trial of the pack back (interrupted: each resumes from its
    checkpoint, alone or in a pack of any size); a trial's crash gives it back as a crash, the others as
    interrupted."""
    training: dict[int, Prepared] = {}  # by lockstep's index, until stored

    def members() -> Iterator[Member]:
        trial, index = first, 0
        while isinstance(trial, optuna.Trial):
            prepared = prepare(
                trial, study_file=study_file, task=task, variant=variant, checkpoint_dir=checkpoint_dir, stop=stop
            )
            training[index] = prepared  # until finished, which may come before the next member is asked for
            yield prepared.member
            trial, index = claim(fits(study_file, prepared.member.config)), index + 1

    outcomes, own = [], None
    try:
        for index, outcome in lockstep(members(), task, pack=PackedNetwork, size=size):
            own = outcome if isinstance(outcome, BaseException) else None
            outcomes.append(finish(training.pop(index), outcome))
    except BaseException as err:
        # A stop, or another trial's own crash (given back as one by finish): the others lose nothing. Anything
        # else broke the pack itself, and costs each trial a retry, so a pack that always breaks ends.
        bystanders = isinstance(err, KeyboardInterrupt) or err is own
        for prepared in training.values():
            give_back(prepared, interrupted=bystanders)
        raise
    return outcomes
