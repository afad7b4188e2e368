"""The networks: `LSTM` (the nn.LSTM drop-in with the paper's variants), the variants' switches, the
SequenceNetwork a trial trains (LSTM layers and a readout), and PackedNetwork, K of them run as one;
kernel/ is LSTM's fast path.

The names below are imported lazily: `import odyssey` reads the variants without importing torch.
"""

from .._lazy import resolve

_WHERE = {
    "LSTM": ".lstm",
    "PackedNetwork": ".pack",
    "SequenceNetwork": ".network",
    "VARIANTS": ".variants",
    "VariantSwitches": ".variants",
    "resolve_variant": ".variants",
}

__all__ = ["LSTM", "VARIANTS", "PackedNetwork", "SequenceNetwork", "VariantSwitches", "resolve_variant"]


def __getattr__(name: str) -> object:
    return resolve(__name__, _WHERE, name)
