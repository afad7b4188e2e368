"""What a study will cost before it runs: a few timed epochs per (task, variant) at the smallest and
the largest hidden size of the study's space, projected over its trials.

An epoch here is what a trial pays per epoch: training on the training split and evaluating the
validation split, timed through `train()` itself on one torch thread (what each of `--jobs N`
workers uses). Between the two hidden sizes the time per epoch follows the power law through the
two points, averaged over the hidden sizes the space draws. How many epochs a trial runs is not
known before it runs, so the projection gives two assumptions: every trial runs to `max_epochs`
(the most it can cost), and every trial improves for `patience` epochs and then stops after
`patience` more (2 x patience, at most max_epochs). `max_seconds` caps both.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError
from .space import ParamRange
from .studyfile import StudyFile

DRAWS = 2000  # hidden sizes drawn from the space to average the cost per epoch over


@dataclass(frozen=True)
class CellCost:
    task: str
    variant: str
    epoch_seconds: dict[int, float]  # hidden size -> seconds per epoch (training + validation)
    patience_seconds: float  # expected seconds of one trial, 2 x patience epochs
    max_seconds: float  # expected seconds of one trial, max_epochs


class _Share:
    """A task that serves the first `share` of each split's batches (after shuffling, a random
    share), counting the frames it served, so that a timed epoch can be scaled up by frames. The
    splits' sizes are counted when it is made, outside the timing."""

    def __init__(self, task, share: float, *, batch_sizes: tuple[int, int]) -> None:
        self._task, self._share = task, share
        train, evaluation = batch_sizes
        self._sizes = {(split, size): [int(b.lengths.sum()) for b in task.batches(split, size)]
                       for split, size in (("train", train), ("validation", evaluation), ("test", evaluation))}  # fmt: skip
        self.served = self.total = 0

    def __getattr__(self, name):
        return getattr(self._task, name)

    def batches(self, split: str, batch_size: int, **kwargs) -> Iterator:
        frames = self._sizes[split, batch_size]
        self.total += sum(frames)
        wanted = max(1, math.ceil(self._share * len(frames)))
        for count, batch in enumerate(self._task.batches(split, batch_size, **kwargs), 1):
            self.served += int(batch.lengths.sum())
            yield batch
            if count == wanted:
                return


def epoch_seconds(task, variant: str, hidden: int, study: StudyFile, *, epochs: int, share: float) -> float:
    """Seconds per epoch of one network, from `epochs` timed epochs (the test split's one evaluation
    included) after an untimed batch of each split."""
    import torch

    from ..model.network import SequenceNetwork
    from ..training.config import Hyperparameters
    from ..training.train import Diverged, train

    torch.manual_seed(0)
    model = SequenceNetwork(input_size=task.input_size, hidden_size=hidden, output_size=task.output_size,
                            variant=variant, bidirectional=task.bidirectional, forget_bias=study.training.forget_bias)  # fmt: skip
    params = {name: _middle(r) for name, r in study.space.items()} | {"hidden_size": hidden}
    hparams = Hyperparameters.from_params(params)
    config = replace(study.training, max_epochs=epochs, patience=epochs, max_seconds=None)
    sizes = (config.batch_size, config.eval_batch_size)
    train(model, _Share(task, 0.0, batch_sizes=sizes), hparams, config=replace(config, max_epochs=1), seed=0)  # warms up
    served = _Share(task, share, batch_sizes=sizes)
    done = []
    start = time.perf_counter()
    try:
        train(model, served, hparams, config=config, seed=0, on_epoch=lambda epoch, *_: done.append(epoch))
    except Diverged:  # the time of the epochs it ran still counts
        pass
    seconds = time.perf_counter() - start
    return seconds / max(len(done), 1) * served.total / max(served.served, 1)


def estimate(study: StudyFile, *, epochs: int = 1, share: float = 1.0, tasks: dict | None = None) -> list[CellCost]:
    """Times every (task, variant) of the study at the space's smallest and largest hidden size."""
    import torch

    from .worker import build_tasks

    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    if not 0 < share <= 1:
        raise ConfigError(f"--share must be in (0, 1], got {share}")
    hidden = study.space["hidden_size"]
    sizes = sorted({int(hidden.low), int(hidden.high)})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tasks = tasks if tasks is not None else build_tasks(study)
        costs = []
        for task_name, variant in study.cells():
            seconds = {h: epoch_seconds(tasks[task_name], variant, h, study, epochs=epochs, share=share) for h in sizes}
            trial = _trial_seconds(seconds, hidden, study)
            costs.append(CellCost(task_name, variant, seconds, *trial))
        return costs
    finally:
        torch.set_num_threads(threads)


def _middle(r: ParamRange) -> float:
    """A typical value of a range: its geometric middle on a log scale, else its middle."""
    return math.sqrt(r.low * r.high) if r.log else (r.low + r.high) / 2


def _trial_seconds(seconds: dict[int, float], hidden: ParamRange, study: StudyFile) -> tuple[float, float]:
    """Expected seconds of a trial under both assumptions, over the hidden sizes the space draws."""
    (low, t_low), (high, t_high) = min(seconds.items()), max(seconds.items())
    power = math.log(t_high / t_low) / math.log(high / low) if high > low else 0.0
    rng = np.random.default_rng(0)
    drawn = np.array([hidden.draw(rng) for _ in range(DRAWS)], dtype=float)
    per_epoch = t_low * (drawn / low) ** power
    training = study.training
    expected = []
    for epochs in (min(2 * training.patience, training.max_epochs), training.max_epochs):
        run = epochs * np.ones_like(per_epoch)
        if training.max_seconds is not None:  # stops after the epoch that passes it
            run = np.minimum(run, np.ceil(training.max_seconds / per_epoch))
        expected.append(float(np.mean(run * per_epoch)))
    return expected[0], expected[1]


def summary(study: StudyFile, costs: list[CellCost], *, jobs: int | None) -> tuple[list[dict[str, object]], list[str]]:
    """A row per cell and the closing lines: the study's CPU-hours under each assumption and, with
    `jobs`, its wall time on this machine."""
    training = study.training
    patience_epochs = min(2 * training.patience, training.max_epochs)
    rows = []
    for cost in costs:
        row = {"task": cost.task, "variant": cost.variant}
        row |= {f"s/epoch H={h}": s for h, s in cost.epoch_seconds.items()}
        row |= {f"s/trial ({patience_epochs} ep.)": cost.patience_seconds, f"s/trial ({training.max_epochs} ep.)": cost.max_seconds,
                f"CPU-h ({patience_epochs} ep.)": study.trials * cost.patience_seconds / 3600}  # fmt: skip
        rows.append(row)
    hours = [study.trials * sum(getattr(c, f) for c in costs) / 3600 for f in ("patience_seconds", "max_seconds")]
    cap = f", each capped at max_seconds = {training.max_seconds:g}" if training.max_seconds is not None else ""
    trials = study.trials * len(costs)
    lines = [
        f"{trials:,} trials ({study.trials} per cell){cap}; timed on one torch thread",
        f"if every trial stops after 2 x patience = {patience_epochs} epochs: {_span(hours[0])} CPU",
        f"if every trial runs max_epochs = {training.max_epochs}: {_span(hours[1])} CPU (the most it can cost)",
    ]
    if jobs is not None:
        cores = os.cpu_count() or 1
        used = min(jobs, cores)
        note = f" ({jobs} jobs on {cores} cores: no faster than {cores})" if jobs > cores else ""
        lines.append(f"with --jobs {jobs}{note}: {_span(hours[0] / used)} to {_span(hours[1] / used)} of wall time")
    return rows, lines


def _span(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} seconds"
    if hours < 1:
        return f"{hours * 60:.1f} minutes"
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours:.0f} hours ({hours / 24:.1f} days)"
