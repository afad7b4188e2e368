"""One direction of a variant LSTM in plain autograd ops: the definition every faster path is tested
against, and what the C++ kernel's backward runs through when a gradient must itself be
differentiated (double backward). `unroll` is the recurrence itself, shared with the packed
networks of odyssey.model.pack, which run it with a leading pack dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .variants import VariantSwitches


def recurrent_weight(switches: VariantSwitches, weight_hh: Tensor, weight_gg: Tensor | None) -> Tensor:
    """W_hh, widened under FGR by the gate-to-gate matrices so each step stays one matmul. Leading
    dimensions (a pack's) pass through."""
    if weight_gg is None:
        return weight_hh
    h = weight_hh.shape[-1]
    per_gate = dict(zip(switches.weighted_gates, weight_gg.split(h, dim=-2)))
    zero = weight_gg.new_zeros(*weight_gg.shape[:-2], h, weight_gg.shape[-1])  # the block input z has no gate feedback
    return torch.cat([weight_hh, torch.cat([per_gate.get(b, zero) for b in switches.blocks], dim=-2)], dim=-1)


def recurrence(
    switches: VariantSwitches,
    inputs: Tensor,
    weight_ih: Tensor,
    bias: Tensor | None,
    weight_hh: Tensor,
    weight_gg: Tensor | None,
    peephole: Tensor | None,
    state: tuple[Tensor, ...],
    mask: Tensor | None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """inputs (T, B, I); state (h, c) or under FGR (h, c, gates), each (B, .); mask (T, B, 1) with True
    on real steps, or None. Returns the outputs (T, B, H) and the final state."""
    projected = nn.functional.linear(inputs, weight_ih, bias)  # all steps in one matmul
    weight = recurrent_weight(switches, weight_hh, weight_gg).t()
    peep = dict(zip(switches.peephole_gates, peephole.unbind(0))) if peephole is not None else {}
    # unbind, not projected[t]: indexing makes autograd zero-fill a (T, B, 4H) gradient every step.
    masks = mask.unbind(0) if mask is not None else [None] * inputs.shape[0]
    outputs, final = unroll(switches, projected.unbind(0), weight, peep, state, masks)
    return torch.stack(outputs), final


def unroll(
    switches: VariantSwitches,
    projected: Sequence[Tensor],
    weight: Tensor,
    peep: dict[str, Tensor],
    state: tuple[Tensor, ...],
    masks: Sequence[Tensor | None],
) -> tuple[list[Tensor], tuple[Tensor, ...]]:
    """The recurrence over the steps' projected inputs, each (B, rows) or, in a pack, (K, B, rows).

    weight: the transposed recurrent weight, (H [+ gates], rows) or (K, H [+ gates], rows): one
    addmm per step, or one baddbmm for the whole pack. peep: each peephole gate's vector, shaped to
    broadcast against the cell state. masks: per step None or True on real steps, (..., B, 1).
    Returns every step's output and the final state."""
    multiply = torch.baddbmm if weight.dim() == 3 else torch.addmm
    h, c, *gates = state
    h_size = h.shape[-1]
    outputs = []
    for x_t, m_t in zip(projected, masks):
        recurrent_in = torch.cat([h, gates[0]], dim=-1) if gates else h
        pre = dict(zip(switches.blocks, multiply(x_t, recurrent_in, weight).split(h_size, dim=-1)))
        new = _step(switches, pre, c, peep)
        if m_t is None:
            h, c, *gates = new
            outputs.append(new[0])
        else:  # finished sequences keep their state; their outputs are zero like pad_packed_sequence's
            h, c, *gates = (torch.where(m_t, n, old) for n, old in zip(new, (h, c, *gates)))
            outputs.append(new[0] * m_t)
    return outputs, (h, c, *gates)


def _step(switches: VariantSwitches, pre: dict[str, Tensor], c: Tensor, peep: dict[str, Tensor]) -> tuple[Tensor, ...]:
    """One step of the block from its pre-activations: the new (h, c) or, under FGR, (h, c, gates)."""
    i = torch.sigmoid(pre["i"] + peep["i"] * c) if "i" in peep else _gate(pre, "i")
    f = (
        1 - i
        if switches.coupled_gates
        else (torch.sigmoid(pre["f"] + peep["f"] * c) if "f" in peep else _gate(pre, "f"))
    )
    z = torch.tanh(pre["z"]) if switches.input_activation else pre["z"]
    c_new = (z if i is None else z * i) + (c if f is None else c * f)
    o = torch.sigmoid(pre["o"] + peep["o"] * c_new) if "o" in peep else _gate(pre, "o")  # peeks at the new cell state
    y = torch.tanh(c_new) if switches.output_activation else c_new
    h_new = y if o is None else y * o
    if not switches.gate_recurrence:
        return h_new, c_new
    act = {"i": i, "f": f, "o": o}
    return h_new, c_new, torch.cat([act[g] for g in switches.recurrent_gates], dim=-1)


def _gate(pre: dict[str, Tensor], name: str) -> Tensor | None:
    """A gate without peepholes, or None for a gate that is switched off (a constant 1)."""
    return torch.sigmoid(pre[name]) if name in pre else None
