"""One direction of a variant LSTM over a whole sequence as a single autograd node.

The reference (`VariantCell._forward_reference`) builds ~25 autograd nodes per step; here the whole
sequence is one call into C++ forward (input projections as one matmul, then the recurrence) and
one backward (BPTT by hand, every weight gradient one matmul after the loop). Same signature and
results as the reference.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..variants import CellSpec
from .build import load

# How the C++ side walks the sequence: 0 lets it choose; 1 forces the team of threads with its own
# matmul, splitting the hidden units, 3 the same team splitting the batch rows, 2 a library matmul
# per step. Only tests change it, to cover each.
SCHEDULE = 0


@lru_cache(maxsize=None)
def layout(spec: CellSpec, hidden_size: int) -> tuple[int, ...]:
    """The spec as the C++ Layout reads it: sizes, then where each gate's rows, peephole and fed-back
    activation sit (-1 where the variant has none), then the flags."""
    def where(names: tuple[str, ...]) -> list[int]:
        return [names.index(g) if g in names else -1 for g in ("i", "f", "o")]

    blocks = spec.blocks
    positions = [blocks.index(b) if b in blocks else -1 for b in ("i", "f", "z", "o")]
    return (
        hidden_size, len(blocks), len(spec.recurrent_gates), *positions,
        *where(spec.peephole_gates), *where(spec.recurrent_gates),
        int(spec.coupled_gates), int(spec.input_activation), int(spec.output_activation),
    )  # fmt: skip


class Recurrence(torch.autograd.Function):
    """(x, W_ih, b, W_hh, W_gg, peepholes, h0, c0, gates0) -> (outputs, h_T, c_T, gates_T)."""

    @staticmethod
    def forward(ctx, x, weight_ih, bias, weight_hh, weight_gg, peephole, h0, c0, g0, mask, spec_layout):
        out, h, c, g, rs, cs, acts = load().forward(
            x, weight_ih, bias, weight_hh, weight_gg, peephole, h0, c0, g0, mask, list(spec_layout), SCHEDULE
        )
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x, weight_ih, rs, cs, acts, weight_hh, weight_gg, peephole, mask)
            ctx.spec_layout = spec_layout
        ctx.set_materialize_grads(False)  # the kernel fills in zeros only where it needs them
        return out, h, c, g

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_h, d_c, d_g):
        x, weight_ih, rs, cs, acts, weight_hh, weight_gg, peephole, mask = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grads = load().backward(
            d_out, d_h, d_c, d_g, x, weight_ih, rs, cs, acts, weight_hh, weight_gg, peephole, mask,
            list(ctx.spec_layout), [needs[0], needs[1] or needs[2], needs[3] or needs[4]], SCHEDULE,
        )  # fmt: skip
        return (*grads, None, None)


def forward_sequence(cell, inputs: Tensor, state: tuple[Tensor, ...], mask: Tensor | None) -> tuple[Tensor, tuple[Tensor, ...]]:
    """`VariantCell.forward` on the kernel: inputs (T, B, I), state (h, c) or (h, c, gates), mask
    (T, B, 1) with True on real steps (any pattern: a False step holds the state)."""
    h0, c0, *gates = state
    g0 = gates[0] if gates else h0.new_zeros(h0.shape[0], 0)
    steps = None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).contiguous()
    out, h, c, g = Recurrence.apply(
        inputs, cell.weight_ih, cell.bias, cell.weight_hh, cell.weight_gg, cell.peephole,
        h0.contiguous(), c0.contiguous(), g0.contiguous(), steps, layout(cell.spec, cell.hidden_size),
    )  # fmt: skip
    return out, ((h, c, g) if gates else (h, c))
