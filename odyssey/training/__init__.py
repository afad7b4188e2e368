"""One trial's training: the settings schema (config, torch-free), the protocol (loop), optimizers, checkpoints;
trials of one cell trained in lockstep as a pack (pack, pack_optim).

The names below are imported lazily, so that a study file's settings load without torch.
"""

from .._lazy import resolve

_WHERE = {
    "TrainingConfig": ".config",
    "Diverged": ".loop",
    "Member": ".pack",
    "TrainingResult": ".loop",
    "train": ".loop",
    "train_pack": ".pack",
    "train_epoch": ".loop",
    "training_threads": ".loop",
}

__all__ = [
    "Diverged",
    "Member",
    "TrainingConfig",
    "TrainingResult",
    "train",
    "train_epoch",
    "train_pack",
    "training_threads",
]


def __getattr__(name: str) -> object:
    return resolve(__name__, _WHERE, name)
