"""Per-epoch training checkpoints: written atomically, read with weights_only=True.

A checkpoint that cannot be read (truncated, corrupted, from another model) is not fatal: the trial
restarts from zero with a warning, since losing one trial's progress beats losing the study.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


@dataclass
class TrainingState:
    epoch: int = 0
    best_metric: float = math.inf
    best_epoch: int = 0
    first_metric: float | None = None
    first_loss: float | None = None
    seconds: float = 0.0
    best_state: dict = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)  # the validation metric of each epoch done


def save(
    path: Path,
    state: TrainingState,
    *,
    identity: dict | None = None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    dropout: torch.Generator | None = None,
) -> None:
    """`dropout`: the generator the trial's dropout draws from; None for torch's global one (a trial
    trained alone). Either way it is stored as "torch_rng", so a trial resumes alone or in a pack."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "identity": json.dumps(identity, sort_keys=True),
        "epoch": state.epoch,
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "first_metric": state.first_metric,
        "first_loss": state.first_loss,
        "seconds": state.seconds,
        "best_state": state.best_state,
        "curve": list(state.curve),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state() if dropout is None else dropout.get_state(),
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)  # a kill mid-write leaves the previous epoch's checkpoint intact


def resume(
    path: Path,
    *,
    identity: dict | None = None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    dropout: torch.Generator | None = None,
) -> TrainingState | None:
    """Restore model, optimizer and RNG from `path`; None when there is nothing usable there.

    A checkpoint of another training (`identity` differs: another study, protocol, slot or parameters,
    e.g. left behind when a storage was reset) is not resumed: the trial starts from zero. `dropout`: as
    for `save`.
    """
    if not path.exists():
        return None
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        payload = torch.load(path, weights_only=True)
        if payload.get("identity") != json.dumps(identity, sort_keys=True):
            warnings.warn(
                f"{path}: checkpoint of another training ({payload.get('identity')}); the trial restarts from zero",
                stacklevel=2,
            )
            return None
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        (torch.set_rng_state if dropout is None else dropout.set_state)(payload["torch_rng"])
        return TrainingState(
            epoch=int(payload["epoch"]),
            best_metric=float(payload["best_metric"]),
            best_epoch=int(payload["best_epoch"]),
            first_metric=payload["first_metric"],
            first_loss=payload["first_loss"],
            seconds=float(payload["seconds"]),
            best_state=payload["best_state"],
            curve=[float(v) for v in payload.get("curve", [])],  # none in a checkpoint older than the curve
        )
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means "start over"
        model.load_state_dict(fresh)  # undo a half-applied load
        warnings.warn(
            f"{path}: checkpoint unreadable ({type(err).__name__}: {err}); the trial restarts from zero", stacklevel=2
        )
        return None


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".partial").unlink(missing_ok=True)
