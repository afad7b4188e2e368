"""Training one network on one task: the paper's protocol, resumable epoch by epoch.

Knows nothing about Optuna, studies, or what the model is: it needs `model(inputs, lengths)`,
a task (odyssey.tasks.Task) and a TrainingConfig.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..tasks import Batch, Task
from . import checkpoint
from .config import TrainingConfig
from .optim import build_optimizer


class Diverged(RuntimeError):
    """Training blew up (a non-finite loss or metric, or an exploding loss); the trial fails with this reason."""


@dataclass(frozen=True)
class TrainingResult:
    validation: float  # best validation metric: the objective
    test: float  # test metric of the best-validation model
    epochs: int
    best_epoch: int
    seconds: float
    stopped: str  # "patience", "max_epochs", "max_seconds", or the reason on_epoch or on_resume gave (e.g. "pruned")
    resumed_from: int  # the checkpoint's epoch this run continued from (0: a fresh start)


# (epoch, validation metric, best so far) -> None to go on, or a reason to stop now (the result's `stopped`)
EpochCallback = Callable[[int, float, float], str | None]
# The validation metric of each epoch a resumed training has done (its checkpoint's) -> as EpochCallback
ResumeCallback = Callable[[list[float]], str | None]


@contextlib.contextmanager
def training_threads(threads: int) -> Iterator[None]:
    """For a while: torch's ops on `threads` threads, and denormal floats flushed to zero in this one.

    Saturated gates make denormals (the logistic of -88 is 6e-39), and on Intel CPUs each costs a
    microcode assist: one epoch of handwriting took 8 times as long for NFG and twice as long for
    FGR on an Intel Xeon, in odyssey's kernel and torch's ops alike, and the same with numbers this
    small flushed (the test metrics came out equal to 4 decimals). Afterwards torch's defaults come
    back: the thread count it had, denormals kept.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(previous)


# mallopt's parameters (glibc's malloc.h): above M_MMAP_THRESHOLD bytes an allocation is mmapped and
# handed back to the system when freed; free memory above M_TRIM_THRESHOLD at the heap's top is too.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """For a process that does nothing but train (a study's worker): glibc's malloc keeps the memory freed
    between steps for the next, instead of handing it back and page-faulting it in anew. A training step
    allocates and frees the same buffers (gradients, optimizer temporaries) every time; a pack of eight
    chorales FGR trials with hidden sizes 180-197 took 10.8 s an epoch with glibc's defaults and 8.4 s
    with these (alone: 8.5 and 8.2 s; one thread, AMD EPYC Zen 5, 2026-12-07). The process then keeps
    its peak memory until it ends. Allocations up to 256 MiB come from the heap, none is trimmed. False
    where the C library is not glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, 256 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def evaluate(model: nn.Module, task: Task, split: str, *, batch_size: int) -> float:
    model.eval()
    numerator = denominator = 0.0
    with torch.no_grad():
        for batch in task.batches(split, batch_size):
            num, den = task.metric(model(batch.inputs, batch.lengths), batch)
            numerator, denominator = numerator + num, denominator + den
    return numerator / denominator if denominator else math.nan


def _noisy(batch: Batch, std: float, generator: torch.Generator) -> torch.Tensor:
    if std == 0:
        return batch.inputs
    noise = torch.randn(batch.inputs.shape, generator=generator, dtype=batch.inputs.dtype)
    return batch.inputs + std * noise  # padding is masked by the LSTM, so its noise never counts


# Steps between looks at the running loss: each look reads a number out of a tensor, and a
# non-finite loss only needs to stop the epoch soon, not at once (nothing is saved mid-epoch).
FINITE_CHECK_STEPS = 32


def train_epoch(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    noise: float,
    generator: torch.Generator,
    epoch: int,
    clip: float | None = None,
) -> float:
    """One pass over the training split, an optimizer step per batch (gradient norm clipped to `clip`); the mean
    training loss.

    The losses add up in a float64 tensor (what summing `loss.item()` in Python computed, without a
    read-out per step); a non-finite loss raises Diverged within FINITE_CHECK_STEPS steps."""
    model.train()
    total, batches = torch.zeros((), dtype=torch.float64), 0
    for batch in task.batches("train", batch_size, shuffle=True, generator=generator):
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(model(_noisy(batch, noise, generator), batch.lengths), batch)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total += loss.detach()
        batches += 1
        if batches % FINITE_CHECK_STEPS == 0:
            _check_finite(total, epoch)
    _check_finite(total, epoch)
    return total.item() / max(batches, 1)


def _check_finite(total: torch.Tensor, epoch: int) -> None:
    if not math.isfinite(value := total.item()):
        raise Diverged(f"training loss became {value} in epoch {epoch}: not a finite number")


def _check_divergence(
    state: checkpoint.TrainingState, *, train_loss: float, metric: float, factor: float, name: str
) -> None:
    """Diverged: a non-finite training loss or validation metric, or a training loss `factor` times the first epoch's.

    The loss, not the metric: an error rate of 0 in the first epoch made any later error look like
    an explosion (a sensor study lost 4 of 21 good trials so), and a bounded error rate cannot show
    a blow-up that the loss does not. The first epoch's loss is its mean over the epoch, untrained
    start included; a first loss of 0 or below (a user's objective) leaves only the finite check.
    """
    if state.first_loss is None:
        state.first_loss, state.first_metric = train_loss, metric
    if not math.isfinite(train_loss):
        raise Diverged(f"training loss became {train_loss} in epoch {state.epoch}: not a finite number")
    if not math.isfinite(metric):
        raise Diverged(
            f"validation {name} became {metric} in epoch {state.epoch}: the network's outputs are no longer finite"
        )
    if state.first_loss > 0 and train_loss > factor * state.first_loss:
        raise Diverged(
            f"training loss became {train_loss:.4g} in epoch {state.epoch}, more than {factor:g} times the first "
            f"epoch's {state.first_loss:.4g} (divergence_factor)"
        )


@dataclass(frozen=True)
class Training:
    """One trial's training as `train` takes it: the model, its settings and seed, its checkpoint and callbacks."""

    model: nn.Module
    config: TrainingConfig
    seed: int
    checkpoint_path: Path | None = None
    checkpoint_identity: dict | None = None
    on_epoch: EpochCallback | None = None
    on_resume: ResumeCallback | None = None


class Trial:
    """One trial's protocol around its training epochs, for `train` and for the packs of pack.py: its
    optimizer, data-order and noise generator and checkpoint; after each epoch the validation metric,
    the divergence check, the best weights, the checkpoint, the callbacks and the stopping rules.

    `dropout`: the generator the model's dropout draws from, saved in the checkpoint; None for torch's
    global one (a trial trained alone draws there)."""

    def __init__(self, training: Training, task: Task, *, dropout: torch.Generator | None = None) -> None:
        self.training, self.task, self.dropout = training, task, dropout
        self.model, self.config, path = training.model, training.config, training.checkpoint_path
        self.optimizer = build_optimizer(self.model, self.config)
        self.generator = torch.Generator().manual_seed(training.seed)
        self.state = checkpoint.TrainingState(best_state=copy.deepcopy(self.model.state_dict()))
        if path is not None:
            self.state = checkpoint.resume(path, identity=training.checkpoint_identity, **self._saved()) or self.state
        self.resumed_from = self.state.epoch
        self.started = time.perf_counter() - self.state.seconds
        self.stopped = "max_epochs"
        hear = training.on_resume
        self.reason = hear(list(self.state.curve)) if hear is not None and self.resumed_from else None
        self.ended = False  # by patience, max_seconds or a callback's reason

    def _saved(self) -> dict:
        """What a checkpoint holds besides the TrainingState."""
        return {"model": self.model, "optimizer": self.optimizer, "generator": self.generator, "dropout": self.dropout}

    @property
    def done(self) -> bool:
        return self.ended or self.reason is not None or self.state.epoch >= self.config.max_epochs

    def end_epoch(self, train_loss: float) -> None:
        """After an epoch of training (the model holds its weights): validate, check, keep the best, save,
        ask on_epoch, and stop early where the protocol says so. Raises Diverged."""
        config, state = self.config, self.state
        metric = evaluate(self.model, self.task, "validation", batch_size=config.eval_batch_size)
        state.epoch += 1
        state.curve.append(metric)
        _check_divergence(
            state, train_loss=train_loss, metric=metric, factor=config.divergence_factor, name=self.task.metric_name
        )
        if metric < state.best_metric:
            state.best_metric, state.best_epoch = metric, state.epoch
            state.best_state = copy.deepcopy(self.model.state_dict())
        state.seconds = time.perf_counter() - self.started
        training = self.training
        if training.checkpoint_path is not None:
            checkpoint.save(training.checkpoint_path, state, identity=training.checkpoint_identity, **self._saved())
        hear = training.on_epoch
        if hear is not None and (reason := hear(state.epoch, metric, state.best_metric)) is not None:
            self.reason = reason
        elif state.epoch - state.best_epoch >= config.patience:
            self.stopped = "patience"
        elif config.max_seconds is not None and state.seconds >= config.max_seconds:
            self.stopped = "max_seconds"
        else:
            return
        self.ended = True

    def result(self) -> TrainingResult:
        """The best epoch's weights back in the model, and its test metric."""
        self.model.load_state_dict(self.state.best_state)
        test = evaluate(self.model, self.task, "test", batch_size=self.config.eval_batch_size)
        return TrainingResult(
            validation=self.state.best_metric,
            test=test,
            epochs=self.state.epoch,
            best_epoch=self.state.best_epoch,
            seconds=time.perf_counter() - self.started,
            stopped=self.reason or self.stopped,
            resumed_from=self.resumed_from,
        )


def train(
    model: nn.Module,
    task: Task,
    *,
    config: TrainingConfig,
    seed: int,
    checkpoint_path: Path | None = None,
    checkpoint_identity: dict | None = None,
    on_epoch: EpochCallback | None = None,
    on_resume: ResumeCallback | None = None,
) -> TrainingResult:
    """The config's optimizer (the paper's Nesterov SGD by default) and Gaussian input noise; early
    stopping on the validation metric.

    With a checkpoint path, each epoch's end is saved there and a later call resumes from it, if the
    checkpoint carries the same `checkpoint_identity` (what the caller says the training is), and
    `on_resume` hears the validation metric of each epoch done so far. A reason to stop from either
    callback ends the training as early stopping does: the best epoch's weights, its test metric.
    """
    return train_alone(Training(model, config, seed, checkpoint_path, checkpoint_identity, on_epoch, on_resume), task)


def train_alone(training: Training, task: Task) -> TrainingResult:
    """`train` of one trial given as a Training (a pack's Member trains alone so too)."""
    trial, model, config = Trial(training, task), training.model, training.config
    while not trial.done:
        loss = train_epoch(
            model,
            task,
            trial.optimizer,
            batch_size=config.batch_size,
            noise=config.input_noise,
            generator=trial.generator,
            epoch=trial.state.epoch + 1,
            clip=config.gradient_clip,
        )
        trial.end_epoch(loss)
    return trial.result()
