"""The network of every task: one (bi)directional variant LSTM layer and a linear output head."""

from __future__ import annotations

import torch
from torch import nn

from .lstm import LSTM
from .variants import CellSpec


class SequenceNetwork(nn.Module):
    """Raw outputs (T, B, output_size); the task applies its own sigmoid, softmax or CTC."""

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        output_size: int,
        variant: str | CellSpec,
        bidirectional: bool,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size, variant=variant, bidirectional=bidirectional, forget_bias=forget_bias)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), output_size)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        outputs, _ = self.lstm(inputs, lengths=lengths)
        return self.head(outputs)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
