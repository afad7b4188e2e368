"""One direction of one layer for a whole pack of trials on the C++ kernel, as a single autograd node.

A pack (odyssey.model.pack) keeps each parameter padded to its largest hidden size. The C++ side
(csrc/pack.inc: forward_pack, backward_pack) runs each trial on its own entries only, cut out of the
padding as odyssey.model.padding lays them out: it does the arithmetic of its own size, whatever the
pack's, and its outputs are what the kernel gives it alone. The gradients go back into the padded
layout, zero on the padding, so FGR needs no mask here. Moving that loop from Python into C++ took a
pack of eight chorales trials from 1.19 to 1.04 s an epoch.

Why one node for K trials: at batch 1 one direction's forward and backward through odyssey.LSTM
cost 181 us at H = 20 and T = 1, 211 us at T = 53, of which the C++ calls themselves took 66 us and
101 us (one thread, AMD EPYC Zen 5, 2026-12-07): the module and autograd around each call are most
of a small trial's LSTM time, and a pack pays them once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..padding import Axes
from ..variants import VariantSwitches
from .build import load
from .function import SCHEDULE, layout


class PackedRecurrence(torch.autograd.Function):
    """(switches, hidden_sizes, steps, axes, x (K, T, B, W), mask (K, T, B) bool or None, W_ih, b, W_hh,
    W_gg, peepholes) -> outputs (K, T, B, H), each trial from a zero state over its first `steps`
    steps (zero after). axes: those of x's last dimension, then of each weight (None where the variant
    has none), as the pack lays them out."""

    @staticmethod
    def forward(ctx, switches, hidden_sizes, steps, axes, x, mask, *weights):
        layouts = [list(layout(switches, hidden)) for hidden in hidden_sizes]
        flat = [[n for axis in a for n in (int(axis[0]), axis[1])] if a is not None else [] for a in axes]
        out, *saved = load().forward_pack(
            x, mask, list(weights), list(hidden_sizes), list(steps), flat, layouts, SCHEDULE
        )
        ctx.hidden_sizes, ctx.flat, ctx.layouts, ctx.saved = hidden_sizes, flat, layouts, saved
        ctx.x, ctx.weights = x, weights  # for their shapes only: they are the caller's, not copies
        return out

    @staticmethod
    def backward(ctx, d_out):
        if torch.is_grad_enabled():
            raise RuntimeError("a pack has no double backward (create_graph=True); train such trials alone")
        needs = [ctx.needs_input_grad[4], *ctx.needs_input_grad[6:]]  # x, then the weights
        grads = load().backward_pack(
            d_out.contiguous(), ctx.saved, ctx.x, list(ctx.weights), list(ctx.hidden_sizes), ctx.flat, ctx.layouts,
            needs, SCHEDULE,
        )  # fmt: skip
        ctx.saved = ctx.x = ctx.weights = None  # the buffers go back to the kernel's pool
        return (None, None, None, None, grads[0], None, *grads[1:])


def packed_direction(
    switches: VariantSwitches,
    hidden_sizes: Sequence[int],
    steps: Sequence[int],
    axes: Sequence[Axes | None],
    inputs: Tensor,
    mask: Tensor | None,
    weights: Sequence[Tensor | None],
) -> Tensor:
    """`PackedRecurrence` with the pack's mask (K, T, B, 1) as the kernel reads it."""
    real = None if mask is None else mask.reshape(mask.shape[:3]).contiguous()
    return PackedRecurrence.apply(switches, tuple(hidden_sizes), tuple(steps), tuple(axes), inputs, real, *weights)
