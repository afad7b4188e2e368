"""One training epoch of the chorales task end to end (data, LSTM, head, loss, SGD step): a network
on torch.nn.LSTM (the NP variant, with packed sequences) against odyssey's on the fast path,
alternated, medians of ratios.

    python benchmarks/epoch.py             # batch 1 (the paper's protocol) and 16, hidden 100
    python benchmarks/epoch.py --quick

Each epoch is odyssey's own training loop (odyssey.training.train_epoch) around each model:
batches come from the task as training serves them, shuffled and grouped by length.
"""

from __future__ import annotations

import argparse

import torch
from timing import alternate
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from odyssey.model.network import SequenceNetwork
from odyssey.tasks import make_task
from odyssey.training import train_epoch


class TorchNetwork(nn.Module):
    """SequenceNetwork's shape on torch.nn.LSTM. Packed: padded batches go through a PackedSequence,
    as variable lengths require. Not packed: the padding is run through too (the loss masks it out;
    only the final state would be wrong), which is faster and what many scripts do."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *, packed: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.head = nn.Linear(hidden_size, output_size)
        self.packed = packed

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return self.head(self.lstm(inputs)[0])
        packed, _ = self.lstm(pack_padded_sequence(inputs, lengths, enforce_sorted=False))
        outputs, _ = pad_packed_sequence(packed, total_length=inputs.shape[0])
        return self.head(outputs)


def odyssey_network(task, hidden: int, variant: str, backend: str) -> SequenceNetwork:
    net = SequenceNetwork(
        input_size=task.input_size,
        hidden_size=hidden,
        output_size=task.output_size,
        variant=variant,
        bidirectional=False,
    )
    for direction in net.lstm.directions:
        direction.backend = backend
    return net


def epoch(task, model: nn.Module, batch_size: int):
    """An epoch as training runs it (train_epoch: batching, shuffling, the loss, an SGD step per batch)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    generator = torch.Generator().manual_seed(0)
    return lambda: train_epoch(model, task, optimizer, batch_size=batch_size, noise=0.0, generator=generator, epoch=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reference", action="store_true", help="also time odyssey's autograd reference (slow)")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds

    torch.manual_seed(0)
    task = make_task("chorales")
    print(f"{task}; hidden {args.hidden}; {torch.get_num_threads()} threads; median of {rounds} alternated epochs\n")
    print("| batch | nn.LSTM NP packed, s/epoch | model | s/epoch | time vs nn.LSTM packed |")
    print("|---|---|---|---|---|")
    for batch_size in args.batch:
        candidates = {
            "nn.LSTM NP, padding not packed": TorchNetwork(
                task.input_size, args.hidden, task.output_size, packed=False
            ),
            "odyssey NP, fast path": odyssey_network(task, args.hidden, "NP", "fast"),
            "odyssey V, fast path": odyssey_network(task, args.hidden, "V", "fast"),
        }
        if args.reference:
            candidates["odyssey NP, reference"] = odyssey_network(task, args.hidden, "NP", "reference")
        reference = TorchNetwork(task.input_size, args.hidden, task.output_size, packed=True)
        ref_time, results = alternate(
            epoch(task, reference, batch_size), {n: epoch(task, m, batch_size) for n, m in candidates.items()},
            rounds=rounds, sample_s=0.0,
        )  # fmt: skip
        for name, (seconds, ratio) in results.items():
            print(f"| {batch_size} | {ref_time:.2f} | {name} | {seconds:.2f} | {ratio:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
