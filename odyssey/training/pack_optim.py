"""One optimizer update for a pack of trials, each with its own hyperparameters and state.

A pack (odyssey.model.PackedNetwork, or anything with its interface: `Pack`) holds each parameter
as one tensor with the trials along its first dimension. `PackedOptimizer` reads each trial's
settings from the torch optimizer that build_optimizer made for it alone (so the two cannot
disagree), keeps them as columns broadcast over the pack (lr, momentum, weight decay: (K, 1, ...)),
and updates every packed tensor with the ops of torch's own single-tensor SGD and Adam, a tensor
where torch has a number: `addcmul(grad, buf, momentum)` is what `grad.add(buf, alpha=momentum)`
computes, `addcdiv(exp_avg * -step_size, denom)` what `addcdiv(exp_avg, denom, value=-step_size)`
does, so given the same gradients each trial's update equals torch's for it alone, bit for bit
(tests/training/test_pack_training.py; torch 2.13 on the CPU). Padded entries have zero values and
zero gradients, so they stay exactly 0. Between packs, a trial's state lives in its own torch
optimizer, in torch's format: `load` copies it in, `write_back` out (its checkpoint saves that), each
on its own side: the pack's device, the trial's.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch
from torch import Tensor, nn

# The per-parameter state each optimizer keeps, as torch names it ("step" apart: one count per trial).
STATE = {torch.optim.SGD: ("momentum_buffer",), torch.optim.Adam: ("exp_avg", "exp_avg_sq")}


class Pack(Protocol):
    """What training a pack needs of it (odyssey.model.PackedNetwork has it); the trainer knows no model class."""

    def __call__(
        self, inputs: Tensor, lengths: Tensor, *, generators: Sequence[torch.Generator], rows: Sequence[int] | None
    ) -> Tensor: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def places(self, name: str, k: int) -> tuple[Tensor, ...]: ...

    def trial_parameters(self, model: nn.Module) -> dict[str, nn.Parameter]: ...

    def write_back(self, models: Sequence[nn.Module]) -> None: ...

    def train(self, mode: bool = True) -> Pack: ...

    def zero_grad(self, set_to_none: bool = True) -> None: ...


class PackedOptimizer:
    """The trials' optimizers (`optimizers[k]` trains `models[k]`, trial k of `pack`) as one update."""

    def __init__(self, pack: Pack, models: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        kinds = {type(optimizer) for optimizer in optimizers}
        if len(kinds) != 1 or not kinds <= STATE.keys():
            raise ValueError(
                f"a pack trains with one optimizer, SGD or Adam; these trials use {sorted(map(str, kinds))}"
            )
        self.kind = kinds.pop()
        self.pack, self.params = pack, dict(pack.named_parameters())
        groups = [_one_group(optimizer) for optimizer in optimizers]
        like = next(iter(self.params.values()))

        def column(key: str, sign: float = 1.0) -> Tensor | None:  # None where no trial uses the setting
            values = [sign * float(group[key]) for group in groups]
            return torch.tensor(values, dtype=like.dtype, device=like.device) if any(values) else None

        self.learning_rates = [float(group["lr"]) for group in groups]
        self.neg_lr, self.weight_decay = column("lr", -1.0), column("weight_decay")
        if self.kind is torch.optim.SGD:
            self.momentum = column("momentum")
            _check_sgd(groups)
        else:
            self.betas, self.eps = _adam_settings(groups)
        keys = STATE[self.kind] if self.kind is torch.optim.Adam or self.momentum is not None else ()
        self.state = {name: {key: torch.zeros_like(p) for key in keys} for name, p in self.params.items()}
        self.steps = [0] * len(optimizers)  # updates each trial has had (Adam's bias correction counts them)
        self.load(models, optimizers)

    def load(self, models: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Each trial's state from its own optimizer (none yet: zeros, as torch starts from)."""
        for k, (model, optimizer) in enumerate(zip(models, optimizers)):
            for name, param in self.pack.trial_parameters(model).items():
                own = optimizer.state.get(param, {})
                for key, packed in self.state[name].items():
                    if own.get(key) is not None:
                        packed[k][self.pack.places(name, k)] = own[key].to(packed.device)
                if "step" in own:
                    self.steps[k] = int(own["step"])
                elif own:
                    self.steps[k] = max(self.steps[k], 1)

    def write_back(self, models: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Each trial's state into its own optimizer, as torch keeps it there (copies, not views of the pack)."""
        for k, (model, optimizer) in enumerate(zip(models, optimizers)):
            if not self.steps[k]:
                continue  # torch makes a trial's state at its first update
            for name, param in self.pack.trial_parameters(model).items():
                if self.kind is torch.optim.SGD and not optimizer.param_groups[0]["momentum"]:
                    continue  # torch's SGD keeps no state without momentum
                own = optimizer.state[param]
                if self.kind is torch.optim.Adam:
                    own["step"] = torch.tensor(float(self.steps[k]))  # a float tensor, torch's default dtype
                for key, packed in self.state[name].items():  # on the trial's device (a pack may be on another)
                    own[key] = packed[k][self.pack.places(name, k)].to(param.device).contiguous()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every trial, from the gradients in the pack's parameters."""
        self.steps = [n + 1 for n in self.steps]
        update = self._sgd if self.kind is torch.optim.SGD else self._adam
        columns = self._adam_columns() if self.kind is torch.optim.Adam else None
        for name, param in self.params.items():
            grad = param.grad
            if self.weight_decay is not None:  # torch: grad.add(param, alpha=weight_decay)
                grad = torch.addcmul(grad, param, _over(self.weight_decay, param))
            update(param, grad, self.state[name], columns)

    def _sgd(self, param: Tensor, grad: Tensor, state: dict[str, Tensor], _: None) -> None:
        # torch's SGD, with momentum as build_optimizer sets it: Nesterov where there is momentum. A trial
        # at momentum 0 computes buf = grad and grad + 0 * buf = grad: plain SGD, as torch runs it.
        if self.momentum is not None:
            momentum = _over(self.momentum, param)
            buf = state["momentum_buffer"].mul_(momentum).add_(grad)
            grad = torch.addcmul(grad, buf, momentum)
        if self.neg_lr is not None:  # every trial at lr 0: nothing moves
            param.addcmul_(grad, _over(self.neg_lr, param))  # torch: param.add_(grad, alpha=-lr)

    def _adam_columns(self) -> tuple[Tensor, Tensor]:
        """Per trial, torch's bias corrections in Python floats: -lr / (1 - beta1^t) and sqrt(1 - beta2^t)."""
        (beta1, beta2), like = self.betas, next(iter(self.params.values()))
        size = [-lr / (1 - beta1 ** float(t)) for lr, t in zip(self.learning_rates, self.steps)]
        root = [(1 - beta2 ** float(t)) ** 0.5 for t in self.steps]
        return tuple(torch.tensor(v, dtype=like.dtype, device=like.device) for v in (size, root))

    def _adam(self, param: Tensor, grad: Tensor, state: dict[str, Tensor], columns: tuple[Tensor, Tensor]) -> None:
        (beta1, beta2), (size, root) = self.betas, columns
        exp_avg, exp_avg_sq = state["exp_avg"].lerp_(grad, 1 - beta1), state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / _over(root, param)).add_(self.eps)
        param.addcdiv_(exp_avg * _over(size, param), denom)  # torch: addcdiv_(exp_avg, denom, value=-step_size)


@torch.no_grad()
def clip_per_trial(params: Sequence[Tensor], limits: Tensor) -> None:
    """clip_grad_norm_ for each trial of a pack on its own: its global gradient norm over its own entries
    (padding adds zeros), scaled to at most limits[k] (inf: not clipped). One norm over the pack would
    mix the trials."""
    norms = torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in params], dim=1)
    total = torch.linalg.vector_norm(norms, dim=1)
    scale = torch.clamp(limits / (total + 1e-6), max=1.0)  # torch's 1e-6
    scale = torch.where(torch.isinf(limits), torch.ones_like(scale), scale)  # unclipped: untouched, even if not finite
    for p in params:
        p.grad.mul_(_over(scale, p.grad))


def clip_limits(limits: Sequence[float | None], like: Tensor) -> Tensor | None:
    """The limits column for clip_per_trial; None where no trial clips."""
    if all(limit is None for limit in limits):
        return None
    return torch.tensor([math.inf if x is None else x for x in limits], dtype=like.dtype, device=like.device)


def _over(column: Tensor, like: Tensor) -> Tensor:
    """A per-trial column (K,) shaped to broadcast over a packed tensor (K, ...)."""
    return column.view(-1, *[1] * (like.dim() - 1))


def _one_group(optimizer: torch.optim.Optimizer) -> dict:
    if len(optimizer.param_groups) != 1:
        raise ValueError("a packed trial's optimizer has one parameter group (build_optimizer's)")
    return optimizer.param_groups[0]


def _check_sgd(groups: list[dict]) -> None:
    for group in groups:
        if group["dampening"] or group["maximize"] or group["nesterov"] != (group["momentum"] > 0):
            raise ValueError(f"no packed update for SGD with {group}: build_optimizer's Nesterov SGD only")


def _adam_settings(groups: list[dict]) -> tuple[tuple[float, float], float]:
    settings = {(tuple(g["betas"]), g["eps"]) for g in groups}
    other = [g for g in groups if g["amsgrad"] or g["maximize"] or g["decoupled_weight_decay"]]
    if len(settings) != 1 or other:
        raise ValueError(f"no packed update for these Adam settings: {sorted(settings)}, {other}")
    return settings.pop()
