"""Training a pack of trials in lockstep (issue 24): each trial what `train` makes of it alone.

K trials of one cell step together through one packed model (odyssey.model.PackedNetwork: each
step one batched matmul for the pack), one loss backward and one fused optimizer update
(pack_optim.py). Everything else stays per trial, in loop.Trial as `train` uses it: its data
order and input noise (its own generator, drawn in the same order as alone), its dropout masks
(its own generator, started in the state torch's global one would have for it alone), its loss,
gradient clipping, optimizer settings and state, validation, divergence check, early stopping,
callbacks and checkpoints, in `train`'s format, so a trial resumes alone or in a pack of any size.

Validation and test run on each trial's own network after the pack's weights are written back
into it: exactly what that trial computes alone from the same weights, and cheap at eval_batch_size
64 (8 chorales trials, hidden 20 to 60: 0.10 s of a 1.0 s packed epoch, one thread, AMD EPYC Zen 5,
2026-12-07). The loss is the task's, per trial: the Task protocol reduces a batch to one number (a
mean over its frames or labels), so one batch of all the trials' sequences would weight them by
their lengths; the 8 losses per step cost 0.06 s of that epoch.

A trial that finishes or fails leaves, and the pack is built anew from those that remain, with the
next member of `members` in the freed place: rebuilding copies the weights and optimizer states
(7 ms for those 8 trials), where masking finished trials out would keep paying for their arithmetic,
and the pad shrinks when the largest leaves. Trials need not start their epochs together: each runs
its own epochs; one that ends its epoch at a step is validated then, while the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..tasks import Batch, Task
from .config import TrainingConfig
from .loop import FINITE_CHECK_STEPS, Diverged, Training, TrainingResult, Trial, _check_finite, _noisy
from .pack_optim import Pack, PackedOptimizer, clip_limits, clip_per_trial

# What the trials of a pack share: their batches are one (K, T, B, I) input (batch_size), one fused
# update (optimizer) and one network shape (num_layers); hidden size, dropout and the rest may differ.
SHARED = ("batch_size", "optimizer", "num_layers")

PackFactory = Callable[[list[nn.Module]], Pack]  # the trials' models -> their pack (PackedNetwork)
Outcome = TrainingResult | Exception  # what `train` returns for a trial alone, or what it raises


@dataclass(frozen=True)
class Member(Training):
    """One trial of a pack: what `train` takes for it alone, and the state of torch's global generator it
    would train with alone (its dropout draws there): `torch.get_rng_state()` after its model is built;
    None: the global generator's state when it joins the pack."""

    rng_state: torch.Tensor | None = None


def train_pack(members: Sequence[Member], task: Task, *, pack: PackFactory, size: int | None = None) -> list[Outcome]:
    """Train the members in packs of at most `size` (all at once by default): each member's TrainingResult,
    or the exception that ended it (Diverged, or what its callbacks raised), which `train` alone would
    return or raise. KeyboardInterrupt and SystemExit stop the whole pack: each trial resumes from its
    last epoch's checkpoint. A member whose batch_size or optimizer differs from the pack's is a
    ValueError (the pack's inputs are (K, T, B, I); one fused update)."""
    outcomes: list[Outcome | None] = [None] * len(members)
    for index, outcome in lockstep(members, task, pack=pack, size=size or len(members)):
        outcomes[index] = outcome
    return outcomes


def lockstep(members: Iterable[Member], task: Task, *, pack: PackFactory, size: int) -> Iterator[tuple[int, Outcome]]:
    """(index in members, outcome) of each member as it leaves; a member is taken from `members` when a
    place is free, so an iterator that claims a trial when asked fills the pack as it goes."""
    waiting, places = enumerate(members), []
    while True:
        while len(places) < size and (joining := next(waiting, None)) is not None:
            place = _Place.join(*joining, task=task, first=places[0] if places else None)
            if isinstance(place, _Place):
                places.append(place)
            else:
                yield place
        if not places:
            return
        for place, outcome in _Lockstep(places, task, pack).until_one_leaves():
            places.remove(place)
            yield place.index, outcome


class _Place:
    """A trial in a pack, and where it is in its epoch."""

    def __init__(self, index: int, trial: Trial, task: Task) -> None:
        self.index, self.trial, self.task = index, trial, task
        self.batch: Batch | None = None
        self._start_epoch()

    @classmethod
    def join(cls, index: int, member: Member, *, task: Task, first: _Place | None) -> _Place | tuple[int, Outcome]:
        if first is not None:
            _check_alike(member.config, first.trial.config)
        dropout = torch.Generator()
        dropout.set_state(member.rng_state if member.rng_state is not None else torch.get_rng_state())
        try:
            trial = Trial(member, task, dropout=dropout)
            return (index, trial.result()) if trial.done else cls(index, trial, task)
        except Exception as err:  # noqa: BLE001 - the trial's end, as `train` would raise it; the pack goes on
            return index, err

    def _start_epoch(self) -> None:
        config = self.trial.config
        batches = self.task.batches("train", config.batch_size, shuffle=True, generator=self.trial.generator)
        self.batches, self.count = iter(batches), 0
        self.total = torch.zeros((), dtype=torch.float64)  # the epoch's losses, as train_epoch adds them

    def next_batch(self) -> bool:
        """Take the epoch's next batch; False when the epoch has none left."""
        self.batch = next(self.batches, None)
        return self.batch is not None

    def add(self, loss: torch.Tensor) -> Diverged | None:
        """Count a step's loss; train_epoch's look at the running loss every FINITE_CHECK_STEPS steps."""
        self.total = self.total.to(loss.device) + loss  # on the pack's device: no wait for it at each step
        self.count += 1
        return self._finite() if self.count % FINITE_CHECK_STEPS == 0 else None

    def _finite(self) -> Diverged | None:
        try:
            _check_finite(self.total, self.trial.state.epoch + 1)
        except Diverged as err:
            return err
        return None

    def end_epoch(self) -> Outcome | None:
        """The trial's epoch end, as in `train` (its model holds the pack's weights); its outcome if it leaves."""
        try:
            if (diverged := self._finite()) is not None:
                return diverged
            self.trial.end_epoch(self.total.item() / max(self.count, 1))
            if self.trial.done:
                return self.trial.result()
        except Exception as err:  # noqa: BLE001 - as in join
            return err
        self._start_epoch()
        self.next_batch()  # a training split has at least one batch
        return None


class _Lockstep:
    """One pack of places: its packed model and optimizer, stepping until a trial leaves."""

    def __init__(self, places: list[_Place], task: Task, pack: PackFactory) -> None:
        self.places, self.task = places, task
        self.models = [place.trial.model for place in places]
        self.optimizers = [place.trial.optimizer for place in places]
        self.pack = pack(self.models)
        self.pack.train()
        self.optimizer = PackedOptimizer(self.pack, self.models, self.optimizers)
        self.params = [p for _, p in self.pack.named_parameters()]
        self.limits = clip_limits([place.trial.config.gradient_clip for place in places], self.params[0])

    def until_one_leaves(self) -> list[tuple[_Place, Outcome]]:
        """Step until at least one trial leaves: those that left, with their outcomes; every trial's model
        and optimizer then hold the pack's weights and state."""
        while True:
            ending = [place for place in self.places if place.batch is None and not place.next_batch()]
            if ending:
                self._write_back()
                if left := [(place, out) for place in ending if (out := place.end_epoch()) is not None]:
                    return left
            losses = self._step()
            for place in self.places:
                place.batch = None
            if failed := [(place, err) for place, loss in zip(self.places, losses) if (err := place.add(loss))]:
                self._write_back()
                return failed

    def _write_back(self) -> None:
        self.pack.write_back(self.models)
        self.optimizer.write_back(self.models, self.optimizers)

    def _step(self) -> torch.Tensor:
        """One training step of every trial on its own batch: one forward, backward and update for the pack."""
        batches = [place.batch for place in self.places]
        steps, width = max(b.inputs.shape[0] for b in batches), batches[0].inputs.shape[-1]
        rows, device = self.places[0].trial.config.batch_size, self.params[0].device
        inputs = batches[0].inputs.new_zeros(len(batches), steps, rows, width)
        lengths = torch.ones(len(batches), rows, dtype=torch.long)  # a short batch's missing rows: length 1, unread
        for k, (place, batch) in enumerate(zip(self.places, batches)):
            noisy = _noisy(batch, place.trial.config.input_noise, place.trial.generator)
            inputs[k, : noisy.shape[0], : batch.size] = noisy
            lengths[k, : batch.size] = batch.lengths
        own_rows = [b.size for b in batches]
        self.pack.zero_grad(set_to_none=True)
        generators = [place.trial.dropout for place in self.places]
        inputs = inputs.to(device)  # each trial's noise is drawn on the CPU, as alone, from its own generator
        out = self.pack(inputs, lengths, generators=generators, rows=own_rows if min(own_rows) < rows else None)
        # unbind, not out[k]: indexing makes autograd zero-fill the whole pack's (K, T, B, O) gradient per trial
        loss = [self.task.loss(own[: b.inputs.shape[0], : b.size], b) for own, b in zip(out.unbind(0), batches)]
        losses = torch.stack(loss)
        losses.sum().backward()  # each trial's loss reaches only its own entries: the gradient of its loss alone
        if self.limits is not None:
            clip_per_trial(self.params, self.limits)
        self.optimizer.step()
        return losses.detach()


def _check_alike(config: TrainingConfig, first: TrainingConfig) -> None:
    for name in SHARED:
        if getattr(config, name) != getattr(first, name):
            raise ValueError(
                f"the trials of a pack share {name}: this one has {getattr(config, name)!r}, the pack "
                f"{getattr(first, name)!r}"
            )
