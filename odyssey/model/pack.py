"""`PackedNetwork`: K SequenceNetworks of one variant run as one: one call per direction for the pack.

Why: at batch 1 and small hidden sizes a trial's time goes to per-call overhead, not arithmetic (a
step written in autograd ops is ~12 forward ops and ~25 autograd nodes, microseconds each; a call of
the C++ kernel through odyssey.LSTM costs ~180 us however short the sequence), so K trials that step
in lockstep pay each call once; on a GPU it is the only way to fill the device. Two paths, both with
the pack's dimension leading: on the CPU, where the kernel runs (odyssey.model.kernel.use_kernel),
each direction of each layer is one C++ call for the whole pack, each trial on its own entries
(kernel/pack_function.py); elsewhere (CUDA, or backend "reference") the autograd reference's
recurrence (`reference.unroll`) with per step one `baddbmm` for the K trials. The input projections
of the reference path and the head are one `baddbmm` each over all steps.

Layout. Each parameter of the networks' LSTMs (named as on `odyssey.LSTM`: weight_ih_l0,
bias_l0_reverse, ...) and heads (head_weight, head_bias) is one tensor with the trials along its
first dimension. Trials whose hidden sizes differ are padded to the pack's largest, H: unit j of a
trial's block b sits at row b * H + j, and its output of direction d at column d * H + j of the
next layer's and the head's weights; `places(name, k)` says where (odyssey.model.padding).

Padding, not grouping: random search draws the hidden size log-uniformly from [20, 200], so the
trials of a cell almost never share one and groups of equal size would be packs of one. Padded
units cannot change a result: their rows and columns hold zeros, so their pre-activations are 0,
their block input and cell state 0 and their output 0 at every step, and every gradient that
reaches their entries is 0 (an optimizer leaves a zero parameter with zero gradient at zero, weight
decay and Adam included). The exception is FGR on the reference path: a padded unit's gates are
sigmoid(0) = 0.5, fed to the real units' gates through its columns of weight_gg, so those columns
would receive gradient, drift, and then change the real units. That path therefore multiplies
weight_gg by a 0/1 mask of the trials' real entries (one product per direction per call, not per
step): padded entries get exactly zero gradient by construction. The kernel path never reads the
padding. What padding costs: eight chorales-sized networks (I = O = 88, T = 50, B = 1, one thread,
forward and backward) took 1.3 ms all at H = 20, 7.9 ms all at 200 and 2.9 ms with seven at 20 and
one at 200, where the trials' own sizes would cost 2.2 ms (V; FGR: 2.0, 27 and 6.5 against 5.2 ms;
the kernel path, the quickest of 7 rounds, AMD EPYC Zen 5, 2026-12-07). The reference path took
6.0, 42 and 36 ms (FGR: 7.8, 210 and 210), every step at the pack's largest size. So on the CPU
packs are not grouped by hidden size.

Dropout (between layers and before the head, nn.LSTM's and SequenceNetwork's places) draws each
trial's masks from that trial's own generator, shaped as the trial alone draws them on the CPU
((T_k, B, directions * H_k), T_k its longest sequence: a batch padded to its longest, as
pad_sequence pads) with `bernoulli_(1 - p)` scaled by 1 / (1 - p), which is what
`nn.functional.dropout` computes on the CPU: a generator in the state of torch's global one makes
the masks of a trial trained alone, bit for bit. The masks are drawn on the CPU wherever the pack
runs (a trial's generator is a CPU one, as its checkpoint keeps it), so a pack on CUDA drops the
same units as the trial alone on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from . import kernel, padding, reference
from .kernel import pack_function
from .lstm import PARTS, _reverse_index
from .network import SequenceNetwork

HEAD = ("head_weight", "head_bias")
# On the kernel each trial runs its own batch's steps, not the pack's longest (a chorales pack of eight
# ran twice the steps it needed), rounded up to a multiple of this: each trial's exact length made
# as many shapes of matmul as (steps, hidden size) pairs, and oneDNN's cache of compiled matmuls (1024
# by default) missed so often that an epoch took 2.0 s instead of 1.4 s (eight chorales trials,
# hidden 20 to 60, one thread, AMD EPYC Zen 5, 2026-12-07).
STEP_BLOCK = 16


class PackedNetwork(nn.Module):
    """K SequenceNetworks of one variant and one shape (input, output, directions, layers, readout);
    hidden sizes and dropout may differ. Built from the networks, whose parameters it copies;
    `write_back` copies the trained ones back, exactly, so checkpoints and results stay per trial.

    `pack(inputs, lengths, generators=..., rows=...)`: inputs (K, T, B, I), each trial its own batch
    padded to the pack's longest; lengths (K, B) or None; one torch.Generator per trial for dropout
    while training; rows: how many of its B sequences each trial's batch has (a short last batch of
    an epoch), the rest being padding (length 1) whose outputs nobody reads, None for all B. Returns
    (K, T, B, O): trial k's outputs as its network computes them on its own steps, the head's bias
    past its lengths.
    """

    def __init__(self, networks: Sequence[SequenceNetwork]) -> None:
        super().__init__()
        if not networks:
            raise ValueError("a pack needs at least one network")
        first = networks[0]
        self._shape = _shape(first)
        lstm = first.lstm
        self.switches, self.num_layers, self.bidirectional = lstm.switches, lstm.num_layers, first.bidirectional
        self.input_size, self.output_size, self.readout = lstm.input_size, first.head.out_features, first.readout
        self.hidden_sizes = tuple(network.hidden_size for network in networks)
        self.dropouts = tuple(float(network.dropout.p) for network in networks)
        self.hidden_size = max(self.hidden_sizes)
        factory = {"dtype": lstm.weight_ih_l0.dtype, "device": lstm.weight_ih_l0.device}
        self._axes = self._layout()
        count = len(networks)
        for name, axes in self._axes.items():
            shape = tuple(n * (self.hidden_size if units else 1) for units, n in axes)
            self.register_parameter(name, nn.Parameter(torch.zeros(count, *shape, **factory)))
        for direction in range(self.num_layers * self.directions if self.switches.gate_recurrence else 0):
            name = "weight_gg" + self._suffix(direction)
            uneven = len(set(self.hidden_sizes)) > 1
            self.register_buffer(name + "_mask", self._real_entries(name) if uneven else None, persistent=False)
        self.load(networks)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffix(self, direction: int) -> str:
        """The parameter suffix of the k-th direction: layer by layer, forward first (odyssey.LSTM's order)."""
        layer, reverse = divmod(direction, self.directions)
        return f"_l{layer}{'_reverse' if reverse else ''}"

    def _layout(self) -> dict[str, tuple[tuple[bool, int], ...]]:
        """Each parameter's axes after the pack's: (True, n) is n blocks of hidden units, padded to the
        pack's size; (False, n) is n plain entries."""
        s = self.switches
        blocks, gates, recurrent = len(s.blocks), len(s.weighted_gates), len(s.recurrent_gates)
        axes: dict[str, tuple[tuple[bool, int], ...]] = {}
        for direction in range(self.num_layers * self.directions):
            suffix = self._suffix(direction)
            layer_input = (False, self.input_size) if direction < self.directions else (True, self.directions)
            shapes = {
                "weight_ih": ((True, blocks), layer_input),
                "bias": ((True, blocks),),
                "weight_hh": ((True, blocks), (True, 1)),
                "weight_gg": ((True, gates), (True, recurrent)) if s.gate_recurrence else None,
                "peephole": ((False, len(s.peephole_gates)), (True, 1)) if s.peephole_gates else None,
            }
            axes |= {part + suffix: shapes[part] for part in PARTS if shapes[part] is not None}
        return axes | {
            "head_weight": ((False, self.output_size), (True, self.directions)),
            "head_bias": ((False, self.output_size),),
        }

    def places(self, name: str, k: int) -> tuple[Tensor, ...]:
        """Where trial k keeps its entries of parameter `name`: an index into the packed tensor's slice
        [k] (as torch.meshgrid gives), in the order of the trial's own parameter. `pack.bias_l0[k][places]`
        is trial k's bias_l0; so is `pack.bias_l0.grad[k][places]` its gradient."""
        return padding.places(self._axes[name], self.hidden_size, self.hidden_sizes[k])

    def _real_entries(self, name: str) -> Tensor:
        """1 where a trial's own entries of `name` sit, 0 on its padding."""
        packed = self._parameters[name]
        mask = torch.zeros_like(packed, requires_grad=False)
        for k in range(len(self.hidden_sizes)):
            mask[k][self.places(name, k)] = 1
        return mask

    def load(self, networks: Sequence[SequenceNetwork]) -> None:
        """Copy the networks' parameters in (they must be the pack's: same shapes and hidden sizes)."""
        self._check_trials(networks)
        with torch.no_grad():
            for k, network in enumerate(networks):
                for name, value in _trial_parameters(network).items():
                    packed = self._parameters[name]
                    packed[k][self.places(name, k)] = value.to(packed.device)

    def write_back(self, networks: Sequence[SequenceNetwork]) -> None:
        """Copy each trial's parameters into its network, exactly (copies, not views of the pack)."""
        self._check_trials(networks)
        with torch.no_grad():
            for k, network in enumerate(networks):
                for name, value in _trial_parameters(network).items():
                    value.copy_(self._parameters[name][k][self.places(name, k)])

    def trial_parameters(self, network: SequenceNetwork) -> dict[str, nn.Parameter]:
        """A trial's network's parameters under the pack's names (the Parameter objects themselves, as its
        optimizer knows them)."""
        return _trial_parameters(network)

    def _check_trials(self, networks: Sequence[SequenceNetwork]) -> None:
        sizes = tuple(network.hidden_size for network in networks)
        if sizes != self.hidden_sizes:
            raise ValueError(f"these networks have hidden sizes {sizes}; the pack's trials have {self.hidden_sizes}")
        for k, network in enumerate(networks):
            _check_alike(self._shape, network, k)

    def extra_repr(self) -> str:
        return (
            f"{len(self.hidden_sizes)} trials, {self.input_size} -> hidden {list(self.hidden_sizes)} -> "
            f"{self.output_size}, num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
            f"readout={self.readout!r}, switches={self.switches}"
        )

    def forward(
        self,
        inputs: Tensor,
        lengths: Tensor | None = None,
        *,
        generators: Sequence[torch.Generator] | None = None,
        rows: Sequence[int] | None = None,
    ) -> Tensor:
        count, total, batch = self._check_input(inputs, lengths, generators)
        rows = self._check_rows(rows, count, batch)
        mask = reverse = None
        steps = [total] * count  # each trial's own padded length, which its dropout masks span
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
            steps = [int(own[:n].max()) for own, n in zip(lengths, rows)]
            mask = (torch.arange(total).view(1, total, 1) < lengths.unsqueeze(1)).unsqueeze(-1).to(inputs.device)
            if int(lengths.min()) < total:  # padding, NaN and inf included, reaches no result (as in odyssey.LSTM)
                inputs = inputs.masked_fill(~mask, 0)
            # The backward direction starts at each sequence's own end: (K, T, B, 1) time index.
            flat = _reverse_index(lengths.reshape(-1), total).view(total, count, batch)
            reverse = flat.permute(1, 0, 2).unsqueeze(-1).to(inputs.device)
        layer_input = inputs
        for layer in range(self.num_layers):
            outputs = [
                self._direction(layer * self.directions + d, layer_input, mask, reverse, steps)
                for d in range(self.directions)
            ]
            layer_input = torch.cat(outputs, dim=-1) if self.bidirectional else outputs[0]
            if layer < self.num_layers - 1:  # nn.LSTM's dropout between layers
                layer_input = self._dropout(layer_input, steps, rows, generators)
        if self.readout == "last" and self.bidirectional:
            layer_input = self._whole_sequence_at_last_step(layer_input, lengths)
        features = self._dropout(layer_input, steps, rows, generators)  # the head's
        flat = features.reshape(count, total * batch, -1)
        out = torch.baddbmm(self.head_bias.unsqueeze(1), flat, self.head_weight.transpose(1, 2))
        return out.view(count, total, batch, self.output_size)

    def _direction(
        self, direction: int, inputs: Tensor, mask: Tensor | None, reverse: Tensor | None, steps: list[int]
    ) -> Tensor:
        """One direction of one layer for the whole pack: inputs (K, T, B, in) -> outputs (K, T, B, H)."""
        backward = direction % self.directions == 1
        if backward:
            inputs = inputs.flip(1) if reverse is None else inputs.gather(1, reverse.expand_as(inputs))
        if inputs.device.type == "cpu" and kernel.use_kernel(None, inputs):  # elsewhere batched matmuls: any device
            out = self._on_kernel(direction, inputs, mask, steps)
        else:
            out = self._on_reference(direction, inputs, mask)
        if backward:
            out = out.flip(1) if reverse is None else out.gather(1, reverse.expand_as(out))
        return out

    def _on_kernel(self, direction: int, inputs: Tensor, mask: Tensor | None, steps: list[int]) -> Tensor:
        """Each trial on the C++ kernel, on its own entries and its own steps rounded up to STEP_BLOCK
        (kernel/pack_function.py): one autograd node."""
        total = inputs.shape[1]
        steps = [min(total, -(-own // STEP_BLOCK) * STEP_BLOCK) for own in steps]
        names = [part + self._suffix(direction) for part in PARTS]
        layer_input = (False, self.input_size) if direction < self.directions else (True, self.directions)
        axes = [(layer_input,), *(self._axes.get(name) for name in names)]
        weights = [getattr(self, name, None) for name in names]
        return pack_function.packed_direction(self.switches, self.hidden_sizes, steps, axes, inputs, mask, weights)

    def _on_reference(self, direction: int, inputs: Tensor, mask: Tensor | None) -> Tensor:
        """The autograd reference with a pack dimension: per step one baddbmm for the pack (any device)."""
        suffix = self._suffix(direction)
        count, total, batch, width = inputs.shape
        weight_ih, bias = getattr(self, "weight_ih" + suffix), getattr(self, "bias" + suffix)
        projected = torch.baddbmm(
            bias.unsqueeze(1), inputs.reshape(count, total * batch, width), weight_ih.transpose(1, 2)
        )
        weight_gg = getattr(self, "weight_gg" + suffix, None)
        gg_mask = getattr(self, "weight_gg" + suffix + "_mask", None)
        if gg_mask is not None:  # padded units' gates are 0.5: their columns must never learn (module docstring)
            weight_gg = weight_gg * gg_mask
        weight = reference.recurrent_weight(self.switches, getattr(self, "weight_hh" + suffix), weight_gg)
        peephole = getattr(self, "peephole" + suffix, None)
        # Each gate's peephole (K, 1, H) broadcasts over the batch of its trial.
        peep = dict(zip(self.switches.peephole_gates, peephole.unsqueeze(2).unbind(1))) if peephole is not None else {}
        h = self.hidden_size
        sizes = (h, h, len(self.switches.recurrent_gates) * h) if self.switches.gate_recurrence else (h, h)
        state = tuple(inputs.new_zeros(count, batch, size) for size in sizes)
        masks = mask.unbind(1) if mask is not None else [None] * total
        steps = projected.view(count, total, batch, -1).unbind(1)
        outputs, _ = reference.unroll(self.switches, steps, weight.transpose(1, 2), peep, state, masks)
        return torch.stack(outputs, dim=1)

    def _whole_sequence_at_last_step(self, outputs: Tensor, lengths: Tensor | None) -> Tensor:
        """SequenceNetwork's readout "last" with two directions, per trial: at each sequence's last
        step the backward half is read from its first step."""
        count, total, batch, _ = outputs.shape
        last = lengths - 1 if lengths is not None else torch.full((count, batch), total - 1)
        at_last = (torch.arange(total).view(1, total, 1) == last.unsqueeze(1)).unsqueeze(-1).to(outputs.device)
        forward, backward = outputs.split(self.hidden_size, dim=-1)
        backward = torch.where(at_last, backward[:, :1].expand_as(backward), backward)
        return torch.cat([forward, backward], dim=-1)

    def _dropout(
        self, features: Tensor, steps: list[int], rows: list[int], generators: Sequence[torch.Generator] | None
    ) -> Tensor:
        """Each trial's dropout with its own p, its mask drawn from its own generator as it is drawn alone
        (module docstring), over its own rows; trials without dropout are left as they are."""
        if not self.training or not any(self.dropouts):
            return features
        count, total, batch, width = features.shape
        groups, h = self.directions, self.hidden_size
        noise = features.new_ones(count, total, batch, groups, h)
        with torch.no_grad():
            trials = zip(self.dropouts, self.hidden_sizes, steps, rows, generators)
            for k, (p, own_h, own_t, own_b, generator) in enumerate(trials):
                if p:
                    own = torch.empty(own_t, own_b, groups * own_h, dtype=features.dtype)  # drawn on the CPU
                    own = own.bernoulli_(1 - p, generator=generator).div_(1 - p).to(features.device)
                    noise[k].zero_()
                    noise[k, :own_t, :own_b, :, :own_h] = own.view(own_t, own_b, groups, own_h)
        return features * noise.view(count, total, batch, width)

    @staticmethod
    def _check_rows(rows: Sequence[int] | None, count: int, batch: int) -> list[int]:
        if rows is None:
            return [batch] * count
        rows = [int(n) for n in rows]
        if len(rows) != count or not all(1 <= n <= batch for n in rows):
            raise ValueError(f"rows must be {count} counts in [1, {batch}], got {rows}")
        return rows

    def _check_input(
        self, inputs: Tensor, lengths: Tensor | None, generators: Sequence[torch.Generator] | None
    ) -> tuple[int, int, int]:
        count = len(self.hidden_sizes)
        if inputs.dim() != 4 or inputs.shape[0] != count or inputs.shape[-1] != self.input_size:
            raise ValueError(
                f"inputs must be (K={count}, T, B, I={self.input_size}) for this pack, got {tuple(inputs.shape)}"
            )
        if inputs.dtype != self.head_weight.dtype or inputs.device != self.head_weight.device:
            raise ValueError(
                f"inputs are {inputs.dtype} on {inputs.device}; the pack is {self.head_weight.dtype} on "
                f"{self.head_weight.device}"
            )
        _, total, batch, _ = inputs.shape
        if total == 0 or batch == 0:
            raise ValueError(f"inputs need at least one step and one sequence, got {tuple(inputs.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths)
            if lengths.shape != (count, batch) or int(lengths.min()) < 1 or int(lengths.max()) > total:
                raise ValueError(f"lengths must be ({count}, {batch}) values in [1, {total}], got {lengths.tolist()}")
        if self.training and any(self.dropouts) and (generators is None or len(generators) != count):
            raise ValueError(
                f"dropout while training draws each trial's masks from its own generator: pass generators= with {count}"
            )
        return count, total, batch


def _trial_parameters(network: SequenceNetwork) -> dict[str, nn.Parameter]:
    """A network's parameters under the pack's names: its LSTM's as they are named there, its head's as head_*."""
    return dict(network.lstm.named_parameters()) | dict(zip(HEAD, (network.head.weight, network.head.bias)))


def _shape(network: SequenceNetwork) -> dict[str, object]:
    """What the trials of a pack share: all but the hidden size, the dropout and the values."""
    if not isinstance(network, SequenceNetwork):
        raise TypeError(f"a pack holds SequenceNetworks, not {type(network).__name__}")
    lstm, weight = network.lstm, network.lstm.weight_ih_l0
    return {
        "variant": lstm.switches,
        "input_size": lstm.input_size,
        "output_size": network.head.out_features,
        "num_layers": lstm.num_layers,
        "bidirectional": network.bidirectional,
        "readout": network.readout,
        "biases": lstm.bias,
        "dtype": weight.dtype,
        "device": weight.device,
    }


def _check_alike(shape: dict[str, object], network: SequenceNetwork, k: int) -> None:
    if differ := [
        f"{key} {value} (the pack's: {shape[key]})" for key, value in _shape(network).items() if value != shape[key]
    ]:
        raise ValueError(f"trial {k} cannot join this pack: " + ", ".join(differ))
