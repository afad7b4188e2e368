"""The LSTM variants of Greff et al. (2017) as switches on the vanilla LSTM block.

This module is torch-free on purpose: studies, reports and the CLI read variant names and
parameter counts without paying for a torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class VariantSwitches:
    """Which parts of the vanilla LSTM block are switched on.

    coupled_gates (CIFG) computes f = 1 - i, so the forget gate has no weights of its own;
    gate_recurrence (FGR) feeds the previous step's gate activations back into every gate.
    """

    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True
    output_activation: bool = True
    peepholes: bool = True
    coupled_gates: bool = False
    gate_recurrence: bool = False

    def __post_init__(self) -> None:
        if self.coupled_gates and not (self.input_gate and self.forget_gate):
            raise ValueError("coupled_gates (CIFG) needs both an input and a forget gate: f = 1 - i")
        # Without gates (NIG+NFG+NOG) FGR and NP have nothing to change: the network would be the same
        # as without them under a second name (a study would run one network as two cells), and FGR
        # would carry a gate state of width 0.
        if not (self.input_gate or self.forget_gate or self.output_gate):
            no_effect = (
                (self.gate_recurrence, "FGR", "feeds the previous step's gate activations back into the gates"),
                (not self.peepholes, "NP", "removes the gates' peepholes"),
            )
            for switched, name, what in no_effect:
                if switched:
                    raise ValueError(
                        f"{name} {what}, but NIG+NFG+NOG leaves no gate: the network is the same without {name}; "
                        f"leave {name} out"
                    )

    @property
    def weighted_gates(self) -> tuple[str, ...]:
        """Gates with weights of their own, in the fused row order (torch's i, f, o order)."""
        own_forget = self.forget_gate and not self.coupled_gates
        return tuple(g for g, on in (("i", self.input_gate), ("f", own_forget), ("o", self.output_gate)) if on)

    @property
    def blocks(self) -> tuple[str, ...]:
        """Row blocks of the fused input/recurrent weights: torch.nn.LSTM's order i, f, g(=z), o."""
        gates = self.weighted_gates
        return tuple(b for b in ("i", "f", "z", "o") if b == "z" or b in gates)

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        return self.weighted_gates if self.peepholes else ()

    @property
    def recurrent_gates(self) -> tuple[str, ...]:
        """Gate activations fed back under FGR. A coupled f = 1 - i adds nothing that i does not carry."""
        return self.weighted_gates if self.gate_recurrence else ()

    def parameter_count(self, input_size: int, hidden_size: int) -> int:
        """Parameters of one direction: fused W, R, b, then peepholes and gate-to-gate matrices."""
        h = hidden_size
        rows = len(self.blocks) * h
        gate_matrices = len(self.weighted_gates) * len(self.recurrent_gates) * h * h
        return rows * (input_size + h + 1) + len(self.peephole_gates) * h + gate_matrices

    def changes(self) -> list[str]:
        """Human-readable differences from vanilla."""
        vanilla = VariantSwitches()
        return [_CHANGE_TEXT[f.name] for f in fields(self) if getattr(self, f.name) != getattr(vanilla, f.name)]


_CHANGE_TEXT = {
    "input_gate": "no input gate (i = 1)",
    "forget_gate": "no forget gate (f = 1)",
    "output_gate": "no output gate (o = 1)",
    "input_activation": "no input activation (g(x) = x)",
    "output_activation": "no output activation (h(x) = x)",
    "peepholes": "no peepholes",
    "coupled_gates": "coupled input and forget gate (f = 1 - i)",
    "gate_recurrence": "full gate recurrence (9 gate-to-gate matrices)",
}

VARIANTS: dict[str, VariantSwitches] = {
    "V": VariantSwitches(),
    "NIG": VariantSwitches(input_gate=False),
    "NFG": VariantSwitches(forget_gate=False),
    "NOG": VariantSwitches(output_gate=False),
    "NIAF": VariantSwitches(input_activation=False),
    "NOAF": VariantSwitches(output_activation=False),
    "NP": VariantSwitches(peepholes=False),
    "CIFG": VariantSwitches(coupled_gates=True),
    "FGR": VariantSwitches(gate_recurrence=True),
}


def resolve_variant(variant: str | VariantSwitches) -> VariantSwitches:
    """A preset name, a '+'-joined combination of presets (e.g. "CIFG+NP"), or a VariantSwitches as is."""
    if isinstance(variant, VariantSwitches):
        return variant
    if not isinstance(variant, str) or not variant:
        raise ValueError(f"variant must be a name like 'V' or 'CIFG+NP', got {variant!r}")
    vanilla = VARIANTS["V"]
    changed: dict[str, bool] = {}
    for part in variant.split("+"):
        name = part.strip().upper()
        if name not in VARIANTS:
            raise ValueError(
                f"unknown variant {part.strip()!r}; expected one of {', '.join(VARIANTS)} or a '+' combination"
            )
        preset = VARIANTS[name]
        changed.update(
            {
                f.name: getattr(preset, f.name)
                for f in fields(preset)
                if getattr(preset, f.name) != getattr(vanilla, f.name)
            }
        )
    return replace(vanilla, **changed)


def canonical_name(variant: str) -> str:
    """The one name of a variant: presets upper-cased, sorted, "+"-joined ("np+cifg" -> "CIFG+NP").

    Cells, checkpoints and reports are named by it, so two spellings of one variant are one cell.
    """
    resolve_variant(variant)  # refuses unknown names and impossible combinations
    parts = {part.strip().upper() for part in variant.split("+")} - ({"V"} if "+" in variant else set())
    return "+".join(sorted(parts)) or "V"


def variant_table(*, input_size: int, hidden_size: int) -> list[dict[str, object]]:
    """One row per preset: its name, what it changes, and its parameter count."""
    return [
        {
            "variant": name,
            "changes": "; ".join(switches.changes()) or "vanilla LSTM with peepholes",
            "parameters": switches.parameter_count(input_size, hidden_size),
        }
        for name, switches in VARIANTS.items()
    ]
