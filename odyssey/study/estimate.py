"""What a study will cost before it runs: a few timed epochs per (task, variant) at the smallest and
the largest hidden size of the study's space, projected over its trials.

An epoch here is what a trial pays per epoch: training on the training split and evaluating the
validation split (and, once per trial, the test split), timed through `train()` itself on one
torch thread (what each of `--jobs N` workers uses), with its checkpoint at each epoch's end; with
`share` below 1, each split's pass is timed over that share of its batches and scaled up by
frames. Not counted: what the study's storage costs per trial (claiming it, recording results and
progress) and each worker's start (importing torch, loading the data). Between the two hidden sizes
the time per epoch follows the power law through the two points, averaged over the hidden sizes the
space draws. How many epochs a trial runs is not
known before it runs, so the projection gives two assumptions: every trial runs to `max_epochs`
(the most it can cost), and every trial improves for `patience` epochs and then stops after
`patience` more (2 x patience, at most max_epochs). `max_seconds` caps both.

With a [pruning] table, the projection under the pruner too: successive halving and hyperband stop
trials at their rungs (rungs.stop_epochs: 1 in reduction_factor goes on at each), each trial at the
earlier of that and, for the lower figure, 2 x patience; how many they really prune depends on the
curves. The median pruner has no such rule: from every trial stopping at min_epochs to the unpruned
projection.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .rungs import halving_rungs, hyperband_shares, stop_epochs
from .space import Choice, Param, ParamRange
from .studyfile import StudyFile

DRAWS = 2000  # hidden sizes drawn from the space to average the cost per epoch over


@dataclass(frozen=True)
class CellCost:
    task: str
    variant: str
    epoch_seconds: dict[int, float]  # hidden size -> seconds per epoch (training + validation)
    test_seconds: dict[int, float]  # hidden size -> seconds of the one evaluation on the test split
    patience_seconds: float  # expected seconds of one trial, 2 x patience epochs
    max_seconds: float  # expected seconds of one trial, max_epochs
    # Under the study's pruner: (stopping also after 2 x patience, stopping only when pruned); None unpruned.
    pruned_seconds: tuple[float, float] | None = None


class _Share:
    """A task that serves the first `share` of each split's batches (after shuffling, a random
    share) and times each pass over a split, from its first batch until the trainer asks past the
    last: what that split costs, batching included, scaled up by the frames it did not serve. The
    splits' sizes are counted when it is made, outside the timing."""

    def __init__(self, task, share: float, *, batch_sizes: tuple[int, int]) -> None:
        self._task, self._share = task, share
        train, evaluation = batch_sizes
        self._frames = {
            (split, size): [int(b.lengths.sum()) for b in task.batches(split, size)]
            for split, size in (("train", train), ("validation", evaluation), ("test", evaluation))
        }
        self.seconds = {"train": 0.0, "validation": 0.0, "test": 0.0}  # per split, scaled to all of its frames
        self.unscaled = {"train": 0.0, "validation": 0.0, "test": 0.0}  # per split, the passes' own seconds
        self.timed = 0.0  # the passes' own seconds, unscaled

    def __getattr__(self, name):
        return getattr(self._task, name)

    def batches(self, split: str, batch_size: int, **kwargs) -> Iterator:
        frames = self._frames[split, batch_size]
        wanted, served = max(1, math.ceil(self._share * len(frames))), 0
        start = time.perf_counter()
        for count, batch in enumerate(self._task.batches(split, batch_size, **kwargs), 1):
            served += int(batch.lengths.sum())
            yield batch
            if count == wanted:
                break
        elapsed = time.perf_counter() - start
        self.timed += elapsed
        self.unscaled[split] += elapsed
        self.seconds[split] += elapsed * sum(frames) / max(served, 1)


def epoch_seconds(
    task, variant: str, hidden: int, study_file: StudyFile, *, epochs: int, share: float
) -> tuple[float, float]:
    """Seconds per epoch (training and validation) of one network, from `epochs` timed epochs after
    an untimed batch of each split, and the seconds of its one evaluation on the test split."""
    import torch

    from ..training.loop import Diverged, train
    from .space import applies, trial_settings
    from .trial import network_for

    values = {name: _typical(r) for name, r in study_file.space.items()} | {"hidden_size": hidden}
    config = trial_settings(
        study_file.training, {k: v for k, v in values.items() if applies(k, values)}
    )  # as a trial would
    torch.manual_seed(0)
    model = network_for(task, variant, config)  # config.hidden_size is `hidden`
    config = replace(config, max_epochs=epochs, patience=epochs, max_seconds=None)
    sizes = (config.batch_size, config.eval_batch_size)
    train(model, _Share(task, 0.0, batch_sizes=sizes), config=replace(config, max_epochs=1), seed=0)  # warms up
    timed = _Share(task, share, batch_sizes=sizes)
    done = []
    with tempfile.TemporaryDirectory() as folder:  # each epoch ends with a checkpoint, as in a study
        start = time.perf_counter()
        try:
            train(model, timed, config=config, seed=0, checkpoint_path=Path(folder) / "trial.pt",
                  on_epoch=lambda epoch, *_: done.append(epoch))  # fmt: skip
        except Diverged:  # the epochs it ran still count; the test split, never reached, costs what validation did
            timed.seconds["test"] = timed.seconds["validation"] / max(len(done), 1)
        between = time.perf_counter() - start - timed.timed  # checkpoints, the best model's copy: per epoch
    epoch = (timed.seconds["train"] + timed.seconds["validation"] + max(between, 0.0)) / max(len(done), 1)
    return epoch, timed.seconds["test"]


def pack_epoch_seconds(
    task, variant: str, hidden: int, study_file: StudyFile, *, epochs: int, share: float, pack: int
) -> float:
    """What one trial of a pack of `pack` pays per epoch (training and validation): a pack of that many
    networks of this hidden size (as `odyssey run --pack` groups trials by it) trained together for
    `epochs` timed epochs after an untimed batch, its time shared out. With `share` below 1 each trial
    sees that share of each split's batches: the passes are scaled up by frames as `epoch_seconds`
    scales them, the rest (checkpoints, the pack's writing back) is not. The trials step together, so
    each one's training pass spans the whole pack's: the K passes of an epoch overlap, and count once."""
    import torch

    from ..model.pack import PackedNetwork
    from ..training.pack import Member, train_pack
    from .space import applies, trial_settings
    from .trial import network_for

    values = {name: _typical(r) for name, r in study_file.space.items()} | {"hidden_size": hidden}
    config = trial_settings(study_file.training, {k: v for k, v in values.items() if applies(k, values)})
    config = replace(config, patience=epochs + 1, max_seconds=None)

    def members(folder: Path, count: int) -> list[Member]:
        made = []
        for k in range(pack):
            torch.manual_seed(k)
            model = network_for(task, variant, config)
            made.append(Member(model, replace(config, max_epochs=count), k, folder / f"trial-{k}.pt"))
        return made

    sizes = (config.batch_size, config.eval_batch_size)
    with tempfile.TemporaryDirectory() as folder:  # each epoch ends with a checkpoint per trial, as in a study
        train_pack(members(Path(folder), 1), _Share(task, 0.0, batch_sizes=sizes), pack=PackedNetwork)  # warms up
        timed = _Share(task, share, batch_sizes=sizes)
        start = time.perf_counter()
        outcomes = train_pack(members(Path(folder) / "timed", epochs), timed, pack=PackedNetwork)
        wall = time.perf_counter() - start
    ran = sum(o.epochs if not isinstance(o, BaseException) else 1 for o in outcomes)  # trial-epochs
    training = timed.seconds["train"] / pack  # each epoch's K overlapping passes, once
    between = wall - timed.unscaled["train"] / pack - timed.unscaled["validation"] - timed.unscaled["test"]
    return (training + timed.seconds["validation"] + max(between, 0.0)) / max(ran, 1)


def estimate(
    study_file: StudyFile, *, epochs: int = 1, share: float = 1.0, pack: int = 1, tasks: dict | None = None
) -> list[CellCost]:
    """Times every (task, variant) of the study at the space's smallest and largest hidden size; with `pack`
    above 1 each trial's epoch as it costs in a pack of that many (its test evaluation as alone)."""
    from ..training.loop import training_threads
    from .worker import build_tasks, check_backend

    check_backend()
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if not 0 < share <= 1:
        raise ConfigError(f"--share must be in (0, 1], got {share}")
    if pack < 1:
        raise ConfigError(f"--pack must be at least 1, got {pack}")
    hidden = study_file.space["hidden_size"]
    sizes = sorted({int(hidden.low), int(hidden.high)})
    with training_threads(1):  # as a study's worker trains
        tasks = tasks if tasks is not None else build_tasks(study_file)
        costs = []
        for task_name, variant in study_file.cells():
            timed = {
                h: epoch_seconds(tasks[task_name], variant, h, study_file, epochs=epochs, share=share) for h in sizes
            }
            epoch, test = ({h: t[k] for h, t in timed.items()} for k in (0, 1))
            if pack > 1:
                cell = tasks[task_name], variant
                epoch = {
                    h: pack_epoch_seconds(*cell, h, study_file, epochs=epochs, share=share, pack=pack) for h in sizes
                }
            pruned = _pruned_seconds(epoch, hidden, study_file, test=test) if study_file.pruning.enabled else None
            costs.append(
                CellCost(task_name, variant, epoch, test, *_trial_seconds(epoch, hidden, study_file, test=test), pruned)
            )
        return costs


def _typical(r: Param) -> object:
    """A typical value: a range's geometric middle on a log scale, else its middle (whole for integers); a
    choice's first."""
    if isinstance(r, Choice):
        return r.choices[0]
    middle = math.sqrt(r.low * r.high) if r.log else (r.low + r.high) / 2
    return round(middle) if r.integer else middle


def _power_law(seconds: dict[int, float], drawn: np.ndarray) -> np.ndarray:
    """The seconds at each drawn hidden size, on the power law through the two timed sizes."""
    (low, t_low), (high, t_high) = min(seconds.items()), max(seconds.items())
    power = math.log(t_high / t_low) / math.log(high / low) if high > low and t_low > 0 and t_high > 0 else 0.0
    return t_low * (drawn / low) ** power


def _trial_seconds(
    seconds: dict[int, float], hidden: ParamRange, study_file: StudyFile, *, test: dict[int, float] | None = None
) -> tuple[float, float]:
    """Expected seconds of a trial under both assumptions (its epochs, then the test split once),
    over the hidden sizes the space draws."""
    training = study_file.training
    drawn = _drawn(seconds, hidden, test)
    return tuple(
        _expected(*drawn, stops={epochs: 1.0}, max_seconds=training.max_seconds)
        for epochs in (min(2 * training.patience, training.max_epochs), training.max_epochs)
    )


def _pruned_seconds(
    seconds: dict[int, float], hidden: ParamRange, study_file: StudyFile, *, test: dict[int, float] | None = None
) -> tuple[float, float]:
    """Expected seconds of a trial under the study's pruner: (stopping also after 2 x patience, stopping only
    when pruned); for the median pruner the range (every trial stops at min_epochs, every one runs max_epochs)."""
    training = study_file.training
    patience_epochs = min(2 * training.patience, training.max_epochs)
    stops = stop_epochs(study_file.pruning, max_epochs=training.max_epochs)
    if stops is None:  # the median pruner: no closed form
        stops, patience_epochs = {training.max_epochs: 1.0}, min(patience_epochs, study_file.pruning.min_epochs)
    capped: dict[int, float] = {}
    for epochs, share in stops.items():
        capped[min(epochs, patience_epochs)] = capped.get(min(epochs, patience_epochs), 0.0) + share
    drawn = _drawn(seconds, hidden, test)
    return tuple(_expected(*drawn, stops=s, max_seconds=training.max_seconds) for s in (capped, stops))


def _drawn(
    seconds: dict[int, float], hidden: ParamRange, test: dict[int, float] | None
) -> tuple[np.ndarray, np.ndarray | float]:
    """The seconds per epoch, and of the test split's one pass, at each hidden size the space draws."""
    rng = np.random.default_rng(0)
    drawn = np.array([hidden.draw(rng) for _ in range(DRAWS)], dtype=float)
    return _power_law(seconds, drawn), (_power_law(test, drawn) if test else 0.0)


def _expected(
    per_epoch: np.ndarray, once: np.ndarray | float, *, stops: dict[int, float], max_seconds: float | None
) -> float:
    """Mean seconds of a trial that trains `epochs` epochs with probability stops[epochs], then the test split
    once; `max_seconds` stops it after the epoch that passes it."""
    expected = 0.0
    for epochs, share in stops.items():
        run = epochs * np.ones_like(per_epoch)
        if max_seconds is not None:
            run = np.minimum(run, np.ceil(max_seconds / per_epoch))
        expected += share * float(np.mean(run * per_epoch + once))
    return expected


def summary(
    study_file: StudyFile, costs: list[CellCost], *, jobs: int | None, pack: int = 1
) -> tuple[list[dict[str, object]], list[str]]:
    """A row per cell and the closing lines: the study's CPU-hours under each assumption (and under its
    pruner) and, with `jobs`, its wall time on this machine; `pack`: what the costs were timed in."""
    training, pruner = study_file.training, study_file.pruning.pruner
    patience_epochs = min(2 * training.patience, training.max_epochs)
    halving = stop_epochs(study_file.pruning, max_epochs=training.max_epochs) is not None
    rows = []
    for cost in costs:
        row = {"task": cost.task, "variant": cost.variant}
        row |= {f"s/epoch H={h}": s for h, s in cost.epoch_seconds.items()}
        row |= {
            f"s/trial ({patience_epochs} ep.)": cost.patience_seconds,
            f"s/trial ({training.max_epochs} ep.)": cost.max_seconds,
            f"CPU-h ({patience_epochs} ep.)": study_file.trials * cost.patience_seconds / 3600,
        }
        if halving:
            row |= {
                f"s/trial ({pruner}, patience)": cost.pruned_seconds[0],
                f"s/trial ({pruner})": cost.pruned_seconds[1],
            }
        rows.append(row)
    hours = [study_file.trials * sum(getattr(c, f) for c in costs) / 3600 for f in ("patience_seconds", "max_seconds")]
    cap = f", each capped at max_seconds = {training.max_seconds:g}" if training.max_seconds is not None else ""
    trials = study_file.trials * len(costs)
    lines = [
        f"{trials:,} trials ({study_file.trials} per cell){cap}; timed on one torch thread"
        f"{f', in packs of {pack} (odyssey run --pack {pack})' if pack > 1 else ''}; "
        "storage writes and worker starts not included",
        f"if every trial stops after 2 x patience = {patience_epochs} epochs: {_span(hours[0])} CPU",
        f"if every trial runs max_epochs = {training.max_epochs}: {_span(hours[1])} CPU (the most it can cost)",
    ]
    pruned = None
    if study_file.pruning.enabled:
        pruned = [study_file.trials * sum(c.pruned_seconds[k] for c in costs) / 3600 for k in (0, 1)]
        lines += _pruned_lines(study_file, pruned)
    if jobs is not None:
        cores = os.cpu_count() or 1
        used = min(jobs, cores)
        note = f" ({jobs} jobs on {cores} cores: no faster than {cores})" if jobs > cores else ""
        lines.append(f"with --jobs {jobs}{note}: {_span(hours[0] / used)} to {_span(hours[1] / used)} of wall time")
        if pruned is not None:
            lines.append(
                f"with --jobs {jobs} under the pruner: {_span(pruned[0] / used)} to {_span(pruned[1] / used)} "
                "of wall time"
            )
    return rows, lines


def _pruned_lines(study_file: StudyFile, hours: list[float]) -> list[str]:
    """What the pruner is assumed to do, and the CPU-hours under it: (with 2 x patience, without)."""
    pruning, training = study_file.pruning, study_file.training
    patience_epochs = min(2 * training.patience, training.max_epochs)
    stops = stop_epochs(pruning, max_epochs=training.max_epochs)
    if stops is None:
        return [
            f"with pruner = {pruning.pruner}: no closed form (it stops a trial against the median of the curves "
            f"so far); from {_span(hours[0])} CPU (every trial pruned at min_epochs = {pruning.min_epochs}) to "
            "the unpruned figures above"
        ]
    sizes = dict(
        min_epochs=pruning.min_epochs, reduction_factor=pruning.reduction_factor, max_epochs=training.max_epochs
    )
    at = f"rungs at {', '.join(map(str, halving_rungs(**sizes))) or 'none before max_epochs'} epochs"
    if pruning.pruner == "hyperband":
        firsts = [pruning.min_epochs * pruning.reduction_factor**b for b in range(len(hyperband_shares(**sizes)))]
        at += f", in {len(firsts)} brackets that start judging at {', '.join(map(str, firsts))}"
    mean = sum(epochs * share for epochs, share in stops.items())
    capped = sum(min(epochs, patience_epochs) * share for epochs, share in stops.items())
    return [
        f"with pruner = {pruning.pruner} (min_epochs = {pruning.min_epochs}, reduction_factor = "
        f"{pruning.reduction_factor}; {at}): {mean:.1f} epochs per trial, {capped:.1f} with the "
        "2 x patience stop",
        f"if the pruner stops trials as its rungs say (1 in {pruning.reduction_factor} goes on at each): "
        f"{_span(hours[0])} CPU with the 2 x patience stop, {_span(hours[1])} without; how many are pruned "
        "depends on the curves",
    ]


def _span(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} seconds"
    if hours < 1:
        return f"{hours * 60:.1f} minutes"
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours:.0f} hours ({hours / 24:.1f} days)"
