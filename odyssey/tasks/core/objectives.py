"""What a task asks of the network's raw outputs: how targets are batched, the loss, the metric.

A class per frame (speech, vowels, copy), binary units per frame (the next frame of a piano roll:
chorales), a label string read out by CTC (handwriting), a number at the last step (adding), and for
your own data a class per sequence and real values per frame. The network always ends in a plain
Linear layer; the softmax, sigmoid or CTC lives here. `readout = "last"` says the objective reads one
output per sequence, at its last step (the network then gives both directions' whole-sequence states).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from .base import Batch
from .metrics import best_path, edit_distance

IGNORE = -100  # target of padded or unscored frames; torch's default ignore_index


def _valid_frames(lengths: torch.Tensor, steps: int, device: torch.device) -> torch.Tensor:
    """(T, B) float mask, 1 where t < length."""
    return (torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)).to(device, torch.float32)


def _unpadded(batch: Batch, steps: int) -> bool:
    """A single sequence of the batch's full length, as every batch of size 1 is: nothing to mask."""
    return batch.lengths.shape[0] == 1 and int(batch.lengths[0]) == steps


class FramewiseClassification:
    """One class per frame; frames whose target is IGNORE are neither trained on nor scored."""

    metric_name = "frame_error"

    def __init__(self, classes: int):
        self.output_size = classes
        self.classes = classes

    def collate(self, targets: list[np.ndarray]) -> tuple[torch.Tensor, None]:
        seqs = [torch.from_numpy(t.astype(np.int64)) for t in targets]
        return pad_sequence(seqs, padding_value=IGNORE), None

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        targets = batch.targets.to(outputs.device)
        return F.cross_entropy(outputs.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        targets = batch.targets.to(outputs.device)
        scored = targets != IGNORE
        errors = (outputs.argmax(-1) != targets) & scored
        return float(errors.sum()), float(scored.sum())


class NextStepBinary:
    """Independent Bernoulli per output unit and frame (piano keys, any multi-label frames); the
    metric is the negative log-likelihood in nats summed over units and averaged over frames, as in
    the paper."""

    metric_name = "nll"

    def __init__(self, units: int):
        self.output_size = units
        self.classes = units

    def collate(self, targets: list[np.ndarray]) -> tuple[torch.Tensor, None]:
        return pad_sequence([torch.from_numpy(t.astype(np.float32)) for t in targets]), None

    def _frame_nll(self, outputs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | float]:
        targets = batch.targets.to(outputs.device)
        nll = F.binary_cross_entropy_with_logits(outputs, targets, reduction="none").sum(-1)
        steps = outputs.shape[0]
        if _unpadded(batch, steps):  # the same sums, without building a mask of ones (batch 1: every step)
            return nll.sum(), float(steps)
        mask = _valid_frames(batch.lengths, steps, outputs.device)
        return (nll * mask).sum(), mask.sum()

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        total, frames = self._frame_nll(outputs, batch)
        return total / frames

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        total, frames = self._frame_nll(outputs, batch)
        return float(total), float(frames)


class CTCTranscription:
    """A label string per sequence; labels are 1..K and 0 is the CTC blank. The loss is torch's CTC
    averaged per target label (its "mean" reduction); the metric is the edit distance of the
    best-path decoding over the reference length (character error rate)."""

    metric_name = "cer"
    blank = 0

    def __init__(self, labels: int):
        self.output_size = labels + 1
        self.classes = labels + 1

    def collate(self, targets: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([len(t) for t in targets], dtype=torch.int64)
        return torch.from_numpy(np.concatenate(targets).astype(np.int64)), lengths

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        log_probs = outputs.float().log_softmax(-1)
        # zero_infinity: a line too short for its text would otherwise turn the whole batch to inf.
        return F.ctc_loss(
            log_probs,
            batch.targets.to(outputs.device),
            batch.lengths,
            batch.target_lengths,
            blank=self.blank,
            reduction="mean",
            zero_infinity=True,
        )

    def decode(self, outputs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Best-path label sequences of a batch of raw outputs (T, B, K+1)."""
        best = outputs.argmax(-1).cpu()
        return [best_path(best[: int(n), b], self.blank) for b, n in enumerate(lengths)]

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        references = torch.split(batch.targets.cpu(), batch.target_lengths.tolist())
        hypotheses = self.decode(outputs, batch.lengths)
        errors = sum(edit_distance(h, r.tolist()) for h, r in zip(hypotheses, references))
        return float(errors), float(batch.target_lengths.sum())


def _last_outputs(outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(B, K): each sequence's output at its last step."""
    last = (batch.lengths - 1).to(outputs.device)
    return outputs[last, torch.arange(outputs.shape[1], device=outputs.device)]


class SequenceClassification:
    """One class per sequence, read at its last step; softmax, the metric is the error rate."""

    metric_name = "error_rate"
    readout = "last"

    def __init__(self, classes: int):
        self.output_size = classes
        self.classes = classes

    def collate(self, targets: list[np.ndarray]) -> tuple[torch.Tensor, None]:
        return torch.from_numpy(np.concatenate(targets).astype(np.int64)), None

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(_last_outputs(outputs, batch), batch.targets.to(outputs.device))

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        errors = _last_outputs(outputs, batch).argmax(-1) != batch.targets.to(outputs.device)
        return float(errors.sum()), float(errors.numel())


class FramewiseRegression:
    """A real vector per frame; mean squared error over the valid frames and outputs."""

    metric_name = "mse"
    classes = None

    def __init__(self, outputs: int):
        self.output_size = outputs

    def collate(self, targets: list[np.ndarray]) -> tuple[torch.Tensor, None]:
        return pad_sequence([torch.from_numpy(t.astype(np.float32)) for t in targets]), None

    def _squared_error(self, outputs: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _valid_frames(batch.lengths, outputs.shape[0], outputs.device).unsqueeze(-1)
        error = (outputs - batch.targets.to(outputs.device)) ** 2 * mask
        return error.sum(), mask.sum() * outputs.shape[-1]

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        total, count = self._squared_error(outputs, batch)
        return total / count

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        total, count = self._squared_error(outputs, batch)
        return float(total), float(count)


class FinalStepRegression:
    """A real vector read from the output at each sequence's last step; mean squared error."""

    metric_name = "mse"
    classes = None
    readout = "last"

    def __init__(self, outputs: int):
        self.output_size = outputs

    def collate(self, targets: list[np.ndarray]) -> tuple[torch.Tensor, None]:
        return torch.from_numpy(np.stack(targets).astype(np.float32)), None

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.mse_loss(_last_outputs(outputs, batch), batch.targets.to(outputs.device))

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        error = (_last_outputs(outputs, batch) - batch.targets.to(outputs.device)) ** 2
        return float(error.sum()), float(error.numel())


__all__ = [
    "IGNORE",
    "CTCTranscription",
    "FinalStepRegression",
    "FramewiseClassification",
    "FramewiseRegression",
    "NextStepBinary",
    "SequenceClassification",
]
