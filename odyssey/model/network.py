"""The network of every task: stacked (bi)directional variant LSTM layers, dropout, a linear output head."""

from __future__ import annotations

import torch
from torch import nn

from .lstm import LSTM
from .variants import VariantSwitches

READOUTS = ("frames", "last")  # an output per step, or one per sequence read at its last step


class SequenceNetwork(nn.Module):
    """Raw outputs (T, B, output_size); the task applies its own sigmoid, softmax or CTC.

    readout="last" (a task scored once per sequence): with two directions, the output at each
    sequence's last step is read from the forward direction's last step and the backward
    direction's first, so both have seen the whole sequence.
    """

    def __init__(
        self,
        *,
        input_size: int,
        hidden_size: int,
        output_size: int,
        variant: str | VariantSwitches,
        bidirectional: bool,
        forget_bias: float = 0.0,
        num_layers: int = 1,
        dropout: float = 0.0,
        readout: str = "frames",
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if num_layers < 1 or not 0 <= dropout < 1:
            raise ValueError(f"num_layers must be >= 1 and dropout in [0, 1), got {num_layers} and {dropout}")
        self.bidirectional, self.readout, self.hidden_size = bidirectional, readout, hidden_size
        between_layers = (
            dropout if num_layers > 1 else 0.0
        )  # nn.LSTM's semantics (it warns on one layer); the head's dropout is below
        self.lstm = LSTM(
            input_size,
            hidden_size,
            num_layers,
            dropout=between_layers,
            bidirectional=bidirectional,
            variant=variant,
            forget_bias=forget_bias,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), output_size)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        outputs, _ = self.lstm(inputs, lengths=lengths)
        if self.readout == "last" and self.bidirectional:
            outputs = self._whole_sequence_at_last_step(outputs, lengths)
        return self.head(self.dropout(outputs))

    def _whole_sequence_at_last_step(self, outputs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        steps, batch, _ = outputs.shape
        last = (
            (lengths.to(outputs.device) - 1)
            if lengths is not None
            else torch.full((batch,), steps - 1, device=outputs.device)
        )
        at_last = (torch.arange(steps, device=outputs.device).unsqueeze(1) == last).unsqueeze(-1)  # (T, B, 1)
        forward, backward = outputs.split(self.hidden_size, dim=-1)
        backward = torch.where(at_last, backward[:1].expand_as(backward), backward)
        return torch.cat([forward, backward], dim=-1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
