"""How one trial trains: torch-free, so study files load without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class TrainingConfig:
    """The paper's protocol by default: one update per sequence, patience 15, at most 150 epochs."""

    batch_size: int = 1
    max_epochs: int = 150
    patience: int = 15
    eval_batch_size: int = 64
    max_seconds: float | None = None  # per trial; stops after the epoch that passes it
    forget_bias: float = 0.0
    divergence_factor: float = 1e3  # a validation metric this many times the first epoch's counts as diverged

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_epochs", "patience", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"'{name}' must be at least 1, got {getattr(self, name)}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"'max_seconds' must be positive, got {self.max_seconds}")


@dataclass(frozen=True)
class Hyperparameters:
    """What one trial trains with."""

    learning_rate: float
    hidden_size: int
    momentum: float
    input_noise: float

    @classmethod
    def from_params(cls, params: dict[str, float | int]) -> "Hyperparameters":
        return cls(
            learning_rate=float(params["learning_rate"]),
            hidden_size=int(params["hidden_size"]),
            momentum=1.0 - float(params["one_minus_momentum"]),
            input_noise=float(params["input_noise"]),
        )
