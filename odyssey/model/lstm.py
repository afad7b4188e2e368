"""`odyssey.LSTM`: one LSTM layer whose components switch off one at a time.

Cell -> direction -> layer, as in PyTorch's fastrnns/custom_lstms.py. This is the clear,
autograd-based reference path; every faster path is tested against it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import kernel
from .variants import CellSpec, resolve_variant

# (h, c) for every variant; FGR also carries the previous step's gate activations: (h, c, gates).
State = tuple[Tensor, ...]


class VariantCell(nn.Module):
    """The parameters of one direction and the recurrence over a whole sequence."""

    def __init__(
        self, input_size: int, hidden_size: int, spec: CellSpec, *, forget_bias: float = 0.0, backend: str | None = None
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.spec, self.forget_bias = input_size, hidden_size, spec, forget_bias
        self.backend = kernel.check_backend(backend)
        rows = len(spec.blocks) * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias = nn.Parameter(torch.empty(rows))
        peepholes = len(spec.peephole_gates)
        self.peephole = nn.Parameter(torch.empty(peepholes, hidden_size)) if peepholes else None
        sources = len(spec.recurrent_gates)
        gate_rows = len(spec.weighted_gates) * hidden_size
        self.weight_gg = nn.Parameter(torch.empty(gate_rows, sources * hidden_size)) if sources else None
        self.reset_parameters()

    @property
    def state_sizes(self) -> tuple[int, ...]:
        h = self.hidden_size
        return (h, h, len(self.spec.recurrent_gates) * h) if self.spec.gate_recurrence else (h, h)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # torch.nn.LSTM's scale
        for weight in (self.weight_ih, self.weight_hh, self.peephole, self.weight_gg):
            if weight is not None:
                nn.init.uniform_(weight, -bound, bound)
        with torch.no_grad():
            self.bias.zero_()
            blocks = self.block_slices()
            if "f" in blocks:
                self.bias[blocks["f"]] = self.forget_bias
            elif self.spec.coupled_gates:
                # f = 1 - sigmoid(b_i): b_i = -forget_bias starts f at sigmoid(forget_bias).
                self.bias[blocks["i"]] = -self.forget_bias

    def block_slices(self) -> dict[str, slice]:
        h = self.hidden_size
        return {b: slice(k * h, (k + 1) * h) for k, b in enumerate(self.spec.blocks)}

    def recurrent_weight(self) -> Tensor:
        """W_hh, widened under FGR by the gate-to-gate matrices so each step stays one matmul."""
        if self.weight_gg is None:
            return self.weight_hh
        h, gates = self.hidden_size, self.spec.weighted_gates
        per_gate = dict(zip(gates, self.weight_gg.split(h, dim=0)))
        zero = self.weight_gg.new_zeros(h, self.weight_gg.shape[1])  # the block input z has no gate feedback
        return torch.cat([self.weight_hh, torch.cat([per_gate.get(b, zero) for b in self.spec.blocks])], dim=1)

    def forward(self, inputs: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
        """inputs (T, B, I); state tensors (B, .); mask (T, B, 1) with True on real steps, or None.

        Runs on the C++ kernel (odyssey.model.kernel) or on `_forward_reference`, as `backend` says."""
        if kernel.use_kernel(self.backend, inputs):
            return kernel.forward_sequence(self, inputs, state, mask)
        return self._forward_reference(inputs, state, mask)

    def _forward_reference(self, inputs: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
        """The recurrence in plain autograd ops: the definition every faster path is tested against."""
        spec, h_size = self.spec, self.hidden_size
        projected = nn.functional.linear(inputs, self.weight_ih, self.bias)  # all steps in one matmul
        weight = self.recurrent_weight().t()
        peep = dict(zip(spec.peephole_gates, self.peephole.unbind(0))) if self.peephole is not None else {}
        steps = mask.unbind(0) if mask is not None else [None] * inputs.shape[0]
        h, c, *gates = state
        outputs = []
        # unbind, not projected[t]: indexing makes autograd zero-fill a (T, B, 4H) gradient every step.
        for x_t, m_t in zip(projected.unbind(0), steps):
            recurrent_in = torch.cat([h, gates[0]], dim=1) if gates else h
            pre = dict(zip(spec.blocks, torch.addmm(x_t, recurrent_in, weight).split(h_size, dim=1)))
            i = torch.sigmoid(pre["i"] + peep["i"] * c) if "i" in peep else _gate(pre, "i")
            f = 1 - i if spec.coupled_gates else (torch.sigmoid(pre["f"] + peep["f"] * c) if "f" in peep else _gate(pre, "f"))
            z = torch.tanh(pre["z"]) if spec.input_activation else pre["z"]
            c_new = (z if i is None else z * i) + (c if f is None else c * f)
            o = torch.sigmoid(pre["o"] + peep["o"] * c_new) if "o" in peep else _gate(pre, "o")  # peeks at the new cell
            y = torch.tanh(c_new) if spec.output_activation else c_new
            h_new = y if o is None else y * o
            new = (h_new, c_new)
            if gates:
                act = {"i": i, "f": f, "o": o}
                new += (torch.cat([act[g] for g in spec.recurrent_gates], dim=1),)
            if m_t is None:
                h, c, *gates = new
                outputs.append(h_new)
            else:  # finished sequences keep their state; their outputs are zero like pad_packed_sequence's
                h, c, *gates = (torch.where(m_t, n, old) for n, old in zip(new, (h, c, *gates)))
                outputs.append(h_new * m_t)
        return torch.stack(outputs), (h, c, *gates)


def _gate(pre: dict[str, Tensor], name: str) -> Tensor | None:
    """A gate without peepholes, or None for a gate that is switched off (a constant 1)."""
    return torch.sigmoid(pre[name]) if name in pre else None


def _reverse_index(lengths: Tensor, total: int) -> Tensor:
    """(T, B) time index that reverses each sequence within its own length and leaves padding put."""
    t = torch.arange(total).unsqueeze(1)
    return torch.where(t < lengths, lengths - 1 - t, t)


class LSTM(nn.Module):
    """A single LSTM layer with the switches of `odyssey.VARIANTS`, called like `torch.nn.LSTM`.

    `lstm(input, state=None, *, lengths=None)` takes (T, B, I) (or (B, T, I) with batch_first) or a
    PackedSequence, and returns `(output, state)` with state `(h, c)` of shape (D, B, H) each;
    FGR variants carry a third tensor, the previous step's gate activations.

    backend: "auto" (the C++ kernel of odyssey.model.kernel for float32/float64 on the CPU, the autograd
    reference otherwise), "fast" or "reference"; None follows $ODYSSEY_BACKEND (default "auto").
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        variant: str | CellSpec = "V",
        bidirectional: bool = False,
        batch_first: bool = False,
        forget_bias: float = 0.0,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.spec = resolve_variant(variant)
        self.bidirectional, self.batch_first = bidirectional, batch_first
        self.directions = nn.ModuleList(
            VariantCell(input_size, hidden_size, self.spec, forget_bias=forget_bias, backend=backend)
            for _ in range(2 if bidirectional else 1)
        )

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, spec={self.spec}, bidirectional={self.bidirectional}"

    def forward(
        self, input: Tensor | PackedSequence, state: State | None = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, State]:
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("pass lengths or a PackedSequence, not both")
            inputs, lengths = pad_packed_sequence(input)
        else:
            inputs = input.transpose(0, 1) if self.batch_first else input
        if inputs.dim() != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"expected input of shape (T, B, {self.input_size}), got {tuple(inputs.shape)}")
        total, batch = inputs.shape[:2]
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
            if lengths.shape != (batch,) or int(lengths.min()) < 1 or int(lengths.max()) > total:
                raise ValueError(f"lengths must be {batch} values in [1, {total}], got {lengths.tolist()}")
            mask = (torch.arange(total).unsqueeze(1) < lengths).unsqueeze(-1).to(inputs.device)
        states = self._initial_states(state, batch, inputs)
        outputs, finals = [], []
        for d, (cell, start) in enumerate(zip(self.directions, states)):
            if d == 0:
                out, final = cell(inputs, start, mask)
            elif lengths is None:
                out, final = cell(inputs.flip(0), start, None)
                out = out.flip(0)
            else:  # the backward direction starts at each sequence's own end, never in the padding
                index = _reverse_index(lengths, total).to(inputs.device).unsqueeze(-1)
                out, final = cell(inputs.gather(0, index.expand_as(inputs)), start, mask)
                out = out.gather(0, index.expand_as(out))
            outputs.append(out)
            finals.append(final)
        output = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        final_state = tuple(torch.stack(parts) for parts in zip(*finals))
        if packed:
            return pack_padded_sequence(output, lengths, enforce_sorted=False), final_state
        return (output.transpose(0, 1) if self.batch_first else output), final_state

    def _initial_states(self, state: State | None, batch: int, like: Tensor) -> list[State]:
        sizes = self.directions[0].state_sizes
        directions = len(self.directions)
        if state is None:
            return [tuple(like.new_zeros(batch, s) for s in sizes) for _ in range(directions)]
        expected = [(directions, batch, s) for s in sizes]
        if len(state) != len(sizes) or any(tuple(t.shape) != e for t, e in zip(state, expected)):
            got = [tuple(t.shape) for t in state]
            raise ValueError(f"initial state must be {len(sizes)} tensors of shapes {expected}, got {got}")
        return [tuple(t[d] for t in state) for d in range(directions)]

    @classmethod
    def from_torch(cls, lstm: nn.LSTM, *, variant: str | CellSpec = "NP") -> "LSTM":
        """Copy a one-layer `torch.nn.LSTM`; peepholes and gate-to-gate matrices start at zero.

        A variant without a gate drops that gate's rows (CIFG drops the forget gate's).
        """
        if not isinstance(lstm, nn.LSTM) or lstm.num_layers != 1 or lstm.proj_size:
            raise ValueError("from_torch takes a one-layer torch.nn.LSTM without projections")
        ref = lstm.weight_ih_l0
        model = cls(
            lstm.input_size, lstm.hidden_size, variant=variant, bidirectional=lstm.bidirectional, batch_first=lstm.batch_first
        ).to(device=ref.device, dtype=ref.dtype)
        torch_rows = dict(zip("ifzo", range(4)))
        for suffix, cell in zip(("", "_reverse"), model.directions):
            rows = torch.cat([torch.arange(h * cell.hidden_size, (h + 1) * cell.hidden_size) for h in (torch_rows[b] for b in cell.spec.blocks)])
            bias = getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}") if lstm.bias else None
            with torch.no_grad():
                cell.weight_ih.copy_(getattr(lstm, f"weight_ih_l0{suffix}")[rows])
                cell.weight_hh.copy_(getattr(lstm, f"weight_hh_l0{suffix}")[rows])
                if bias is None:
                    cell.bias.zero_()
                else:
                    cell.bias.copy_(bias[rows])
                for extra in (cell.peephole, cell.weight_gg):
                    if extra is not None:
                        extra.zero_()
        return model
