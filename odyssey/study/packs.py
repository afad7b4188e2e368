"""`odyssey run --pack K [--device cuda]` (issue 24): a worker trains up to K claimed slots of one cell in
lockstep, on the CPU or on a GPU.

The first slot is claimed as ever; the others are claimed one by one through the same atomic claim
whenever a place of the pack is free, only among the cell's queued slots that fit the pack (below),
so a slot that does not fit stays queued for a pack of its own, untouched; of those, the one whose
hidden size is closest to the last trial's that joined. Each trial is prepared
and finished exactly as a trial trained alone (trial.py): its own heartbeat, callbacks, checkpoint
and stored result; training.pack.lockstep trains them, each what `train` makes of it alone.

On a GPU (`device` "cuda") only the pack lives there: its padded weights, optimizer state, forward,
loss and update, through batched matrix products (PackedNetwork's reference path). Each trial's own
network, optimizer, generators and checkpoint stay on the CPU, where it is validated and tested after
the pack's weights are written back, so its checkpoint resumes anywhere, alone or packed, on either.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial
from torch import nn

from ..errors import ConfigError
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
    """How far a queued slot is from a pack that trains like `first`, by its queued parameters: None where it
    cannot join (it differs in what a pack shares; or it was queued empty, TPE filling it when taken, and the
    space searches some of that), else how far its hidden size is from first's, in log units. Packs are
    padded to their largest trial, and the padding costs in the optimizer's update and the gradients: eight
    chorales trials with hidden sizes drawn from the paper's [20, 200] took longer packed than alone, the
    update alone 2.4 ms a step for 0.26 ms alone (one thread, AMD EPYC Zen 5, 2026-12-07)."""
    searched = [key for key in study_file.space if space_setting(key).field in SHARED]

    def fit(queued: FrozenTrial) -> float | None:
        if any(key not in queued.params for key in searched):
            return None
        config = trial_settings(study_file.training, queued.params)
        if any(getattr(config, name) != getattr(first, name) for name in SHARED):
            return None
        return abs(math.log(config.hidden_size / first.hidden_size))

    return fit


def check_device(name: str) -> str:
    """`--device`, checked before a run starts (one line, exit 2, not a failure in every worker): "cpu", or
    "cuda" / "cuda:N" where torch sees that GPU. Returns torch's spelling of it."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name!r}: expected cpu, cuda, or cuda:N for the N-th GPU")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(f"--device {name}: torch {torch.__version__} ({build}) sees no GPU on this machine")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return str(device)


def packed_on(device: str) -> Callable[[list[nn.Module]], PackedNetwork]:
    """The pack factory for training.pack: the trials' networks (on the CPU) as one PackedNetwork on `device`."""
    return lambda networks: PackedNetwork(networks).to(device)


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
    device: str = "cpu",
) -> list[TrialOutcome]:
    """Train `first` and, as places free, the cell's next slots that fit it, up to `size` at once, the pack on
    `device`; each stored as run_trial stores it. A stop gives every trial of the pack back (interrupted: each
    resumes from its checkpoint, alone or in a pack of any size); a trial's crash gives it back as a crash,
    the others as interrupted."""
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
        for index, outcome in lockstep(members(), task, pack=packed_on(device), size=size):
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
