"""One trial's training: the settings schema (config, torch-free), the protocol (loop), optimizers, checkpoints.

The names below are imported lazily, so that a study file's settings load without torch.
"""

from .._lazy import resolve

_WHERE = {
    "TrainingConfig": ".config",
    "Diverged": ".loop",
    "TrainingResult": ".loop",
    "train": ".loop",
    "train_epoch": ".loop",
    "training_threads": ".loop",
}

__all__ = ["Diverged", "TrainingConfig", "TrainingResult", "train", "train_epoch", "training_threads"]


def __getattr__(name: str) -> object:
    return resolve(__name__, _WHERE, name)
