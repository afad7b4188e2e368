"""One direction of a variant LSTM over a whole sequence as a single autograd node.

The reference (`odyssey.model.reference.recurrence`) builds ~25 autograd nodes per step; here the
whole sequence is one call into C++ forward (input projections as one matmul, then the recurrence)
and one backward (BPTT by hand, every weight gradient one matmul after the loop). Same signature
and results as the reference.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

from .. import reference
from ..variants import VariantSwitches
from .build import load

# How the C++ side walks the sequence: 0 lets it choose; 1 forces the team of threads with its own
# matmul, splitting the hidden units, 3 the same team splitting the batch rows, 2 a library matmul
# per step. Only tests change it, to cover each.
SCHEDULE = 0


@cache
def layout(switches: VariantSwitches, hidden_size: int) -> tuple[int, ...]:
    """The switches as the C++ Layout reads them: sizes, then where each gate's rows, peephole and fed-back
    activation sit (-1 where the variant has none), then the flags."""

    def where(names: tuple[str, ...]) -> list[int]:
        return [names.index(g) if g in names else -1 for g in ("i", "f", "o")]

    blocks = switches.blocks
    positions = [blocks.index(b) if b in blocks else -1 for b in ("i", "f", "z", "o")]
    return (
        hidden_size, len(blocks), len(switches.recurrent_gates), *positions,
        *where(switches.peephole_gates), *where(switches.recurrent_gates),
        int(switches.coupled_gates), int(switches.input_activation), int(switches.output_activation),
    )  # fmt: skip


class Recurrence(torch.autograd.Function):
    """(switches, x, W_ih, b, W_hh, W_gg, peepholes, h0, c0, gates0, mask) -> (outputs, h_T, c_T, gates_T)."""

    @staticmethod
    def forward(ctx, switches, x, weight_ih, bias, weight_hh, weight_gg, peephole, h0, c0, g0, mask):
        switches_layout = layout(switches, weight_hh.shape[1])
        out, h, c, g, rs, cs, acts = load().forward(
            x, weight_ih, bias, weight_hh, weight_gg, peephole, h0, c0, g0, mask, list(switches_layout), SCHEDULE
        )
        if any(ctx.needs_input_grad):
            # The inputs themselves too: a double backward recomputes the sequence from them.
            ctx.save_for_backward(x, weight_ih, bias, weight_hh, weight_gg, peephole, h0, c0, g0, mask, rs, cs, acts)
            ctx.switches = switches
        ctx.set_materialize_grads(False)  # the kernel fills in zeros only where it needs them
        return out, h, c, g

    @staticmethod
    def backward(ctx, d_out, d_h, d_c, d_g):
        if torch.is_grad_enabled():  # create_graph=True: the gradient must be differentiable in turn
            return (None, *_backward_through_reference(ctx, (d_out, d_h, d_c, d_g), create_graph=True), None)
        if _batched(d_out, d_h, d_c, d_g):
            # A batched backward (is_grads_batched, jacobian(vectorize=True)) runs this under vmap: the
            # gradients are BatchedTensors without storage for the C++ code to read, so the reference's
            # ops, which vmap knows, differentiate the sequence instead (as dispatch does for a forward).
            return (None, *_backward_through_reference(ctx, (d_out, d_h, d_c, d_g), create_graph=False), None)
        x, weight_ih, bias, weight_hh, weight_gg, peephole, _, _, _, mask, rs, cs, acts = ctx.saved_tensors
        needs = ctx.needs_input_grad[1:]
        grads = load().backward(
            d_out, d_h, d_c, d_g, x, weight_ih, rs, cs, acts, weight_hh, weight_gg, peephole, mask,
            list(layout(ctx.switches, weight_hh.shape[1])), bias is not None,
            [needs[0], needs[1] or needs[2], needs[3] or needs[4]], SCHEDULE,
            [],  # no buffers to write into: every gradient has storage of its own
        )  # fmt: skip
        return (None, *grads, None)


def _batched(*grads: Tensor | None) -> bool:
    """Whether this backward runs under vmap: torch.func's (jacrev, vmap of grad) or the legacy one that
    autograd.grad(is_grads_batched=True) and jacobian(vectorize=True) use."""
    legacy = any(g is not None and torch._C._functorch.is_legacy_batchedtensor(g) for g in grads)
    return legacy or torch._C._functorch.maybe_current_level() is not None


def _backward_through_reference(
    ctx, grads: tuple[Tensor | None, ...], *, create_graph: bool
) -> tuple[Tensor | None, ...]:
    """The gradients of (x, W_ih, b, W_hh, W_gg, peepholes, h0, c0, gates0) through the autograd
    reference, run again from the saved inputs: with create_graph as a graph of their own, so that a
    gradient penalty or a Hessian-vector product sees every path; without, for a batched backward."""
    *inputs, mask = ctx.saved_tensors[:10]
    switches = ctx.switches
    wanted = [t is not None and need for t, need in zip(inputs, ctx.needs_input_grad[1:10])]
    x, weight_ih, bias, weight_hh, weight_gg, peephole, h0, c0, g0 = inputs
    state = (h0, c0, g0) if switches.gate_recurrence else (h0, c0)
    steps = None if mask is None else mask.unsqueeze(-1)
    with torch.enable_grad():  # a plain backward runs with grad mode off
        out, final = reference.recurrence(switches, x, weight_ih, bias, weight_hh, weight_gg, peephole, state, steps)
    pairs = [(o, g) for o, g in zip((out, *final), grads) if g is not None]
    sources = [t for t, w in zip(inputs, wanted) if w]
    if not pairs or not sources:
        return (None,) * len(inputs)
    found = iter(torch.autograd.grad(
        [o for o, _ in pairs], sources, [g for _, g in pairs], create_graph=create_graph, allow_unused=True
    ))  # fmt: skip
    return tuple(next(found) if w else None for w in wanted)


def forward_sequence(
    direction, inputs: Tensor, state: tuple[Tensor, ...], mask: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """`VariantDirection.forward` on the kernel: inputs (T, B, I), state (h, c) or (h, c, gates), mask
    (T, B, 1) with True on real steps (any pattern: a False step holds the state). Weights that are
    not contiguous (a transposed copy, say) run on a contiguous copy that passes gradients back."""
    h0, c0, *gates = state
    g0 = gates[0] if gates else h0.new_zeros(h0.shape[0], 0)
    steps = None if mask is None else mask.reshape(mask.shape[0], mask.shape[1]).contiguous()
    weights = [None if w is None else w.contiguous() for w in direction.weights()]
    out, h, c, g = Recurrence.apply(
        direction.switches, inputs.contiguous(), *weights, h0.contiguous(), c0.contiguous(), g0.contiguous(), steps
    )
    return out, ((h, c, g) if gates else (h, c))
