"""`odyssey.LSTM`: torch.nn.LSTM's interface over one block whose components switch off one at a time.

Step -> direction -> layer, as in PyTorch's fastrnns/custom_lstms.py (which calls the step a cell).
Each direction runs on the C++ kernel (odyssey.model.kernel) or on the autograd reference
(odyssey.model.reference), which every faster path is tested against.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import kernel, reference
from .variants import VARIANTS, VariantSwitches, resolve_variant

# (h, c) for every variant; FGR also carries the previous step's gate activations: (h, c, gates).
State = tuple[Tensor, ...]

# One direction's parameters, in the order the kernel takes them; each is stored on the LSTM as
# f"{part}_l{layer}" (+ "_reverse"), torch.nn.LSTM's names where nn.LSTM has the same tensor.
PARTS = ("weight_ih", "bias", "weight_hh", "weight_gg", "peephole")
# Where nn.LSTM's fused rows sit: i, f, g (= z), o.
TORCH_BLOCKS = dict(zip("ifzo", range(4)))


class VariantDirection:
    """One direction of one layer: a view of the parameters its LSTM holds, and the recurrence over a
    whole sequence. Looked up by name at every call, so `.to()`, `load_state_dict`,
    `torch.func.functional_call` and parametrizations all act on what the direction computes with."""

    def __init__(self, owner: LSTM, layer: int, reverse: bool, input_size: int) -> None:
        self.owner, self.layer, self.reverse, self.input_size = owner, layer, reverse, input_size
        self.suffix = f"_l{layer}{'_reverse' if reverse else ''}"

    switches = property(lambda self: self.owner.switches)
    hidden_size = property(lambda self: self.owner.hidden_size)
    weight_ih = property(lambda self: getattr(self.owner, "weight_ih" + self.suffix))
    weight_hh = property(lambda self: getattr(self.owner, "weight_hh" + self.suffix))
    bias = property(lambda self: getattr(self.owner, "bias" + self.suffix))
    peephole = property(lambda self: getattr(self.owner, "peephole" + self.suffix))
    weight_gg = property(lambda self: getattr(self.owner, "weight_gg" + self.suffix))

    @property
    def backend(self) -> str | None:
        """The LSTM's backend: one for all its directions."""
        return self.owner.backend

    @backend.setter
    def backend(self, value: str | None) -> None:
        self.owner.backend = kernel.check_backend(value)

    def weights(self) -> tuple[Tensor | None, ...]:
        return tuple(getattr(self.owner, part + self.suffix) for part in PARTS)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        h = self.hidden_size
        return (h, h, len(self.switches.recurrent_gates) * h) if self.switches.gate_recurrence else (h, h)

    def block_slices(self) -> dict[str, slice]:
        h = self.hidden_size
        return {b: slice(k * h, (k + 1) * h) for k, b in enumerate(self.switches.blocks)}

    def recurrent_weight(self) -> Tensor:
        return reference.recurrent_weight(self.switches, self.weight_hh, self.weight_gg)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # torch.nn.LSTM's scale
        for weight in (self.weight_ih, self.weight_hh, self.peephole, self.weight_gg):
            if weight is not None:
                nn.init.uniform_(weight, -bound, bound)
        if self.bias is None:
            return
        with torch.no_grad():
            self.bias.zero_()
            blocks = self.block_slices()
            if "f" in blocks:
                self.bias[blocks["f"]] = self.owner.forget_bias
            elif self.switches.coupled_gates:
                # f = 1 - sigmoid(b_i): b_i = -forget_bias starts f at sigmoid(forget_bias).
                self.bias[blocks["i"]] = -self.owner.forget_bias

    def __call__(self, inputs: Tensor, state: State, mask: Tensor | None) -> tuple[Tensor, State]:
        """inputs (T, B, I); state tensors (B, .); mask (T, B, 1) with True on real steps, or None."""
        if inputs.shape[1] and kernel.use_kernel(self.backend, inputs):  # an empty batch has nothing to run
            return kernel.forward_sequence(self, inputs, state, mask)
        if torch.jit.is_tracing():
            steps = inputs.shape[0]
            warnings.warn(
                f"torch.jit.trace records the {steps} steps of odyssey.LSTM's reference loop: the traced module "
                f"runs only inputs of exactly {steps} steps (others fail with 'Expected {steps} elements in a list'). "
                "The C++ kernel (backend 'auto' or 'fast', float32/float64 on the CPU) is one traced call that "
                "runs any length, but a trace that holds it cannot be saved",
                torch.jit.TracerWarning,
                stacklevel=2,
            )
        return reference.recurrence(self.switches, inputs, *self.weights(), state, mask)

    def __repr__(self) -> str:
        return f"VariantDirection({self.suffix[1:]}, {self.input_size}, {self.hidden_size}, switches={self.switches})"


def _zero_padding(inputs: Tensor, mask: Tensor) -> Tensor:
    """A copy of the (T, B, I) inputs with zeros on the steps past each length.

    Padding holds whatever the caller left there, NaN and inf included. Zeroed once here, for both
    backends and every layer, it reaches no result: a NaN times the zero gradient of a padded step
    is still NaN in the kernel's dW_ih = DA^T X, and in the reference's masked output. At T = 100,
    B = 16, I = 88, H = 100 (variant V, one thread, a busy 2-core AMD EPYC Zen 5) this copy took
    56-60 us beside 3.7-3.9 ms for the LSTM's forward and backward (1.5%); torch.where, twice as
    long alone, was the alternative. Unpadded and packed inputs skip it.
    """
    padded_rows = (~mask).reshape(-1).nonzero().squeeze(1)
    copy = inputs.clone(memory_format=torch.contiguous_format)  # batch_first inputs arrive transposed
    return copy.view(-1, inputs.shape[-1]).index_fill_(0, padded_rows, 0).view(inputs.shape)


def _reverse_index(lengths: Tensor, total: int) -> Tensor:
    """(T, B) time index that reverses each sequence within its own length and leaves padding put."""
    t = torch.arange(total).unsqueeze(1)
    return torch.where(t < lengths, lengths - 1 - t, t)


class LSTM(nn.Module):
    """torch.nn.LSTM with the switches of `odyssey.VARIANTS`: same arguments, parameter names, shapes
    and errors (see tests/model/test_nn_lstm_peer.py for the few deliberate differences).

    `lstm(input, hx=None, *, lengths=None)` takes (T, B, I) (or (B, T, I) with batch_first), an
    unbatched (T, I) or a PackedSequence, and returns `(output, state)` with state `(h, c)` of shape
    (num_layers * directions, B, H) each; FGR variants carry a third tensor of the same leading
    shape, the previous step's gate activations. `lengths` (B,) is an alternative to packing: steps
    past a sequence's length hold its state and output zeros.

    Parameters per layer k and direction (suffix "" or "_reverse"): weight_ih_l{k}, weight_hh_l{k}
    and bias_l{k} (torch's bias_ih + bias_hh in one, as in the paper; loading an nn.LSTM state_dict
    adds them up), and where the variant has them peephole_l{k} (gates x H) and weight_gg_l{k}
    (FGR's gate-to-gate matrices). A variant without a gate has no rows for it.

    backend: "auto" (the C++ kernel of odyssey.model.kernel for float32/float64 on the CPU, the
    autograd reference otherwise), "fast" or "reference"; None follows $ODYSSEY_BACKEND (default
    "auto"). Biases start at zero (forget_bias on the forget gate), weights as in nn.LSTM.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        variant: str | VariantSwitches = "V",
        forget_bias: float = 0.0,
        backend: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_arguments(input_size, hidden_size, num_layers, bias, batch_first, dropout)
        _refuse_projections(proj_size, "odyssey.LSTM cannot be built")
        if forget_bias and not bias:
            raise ValueError(f"forget_bias={forget_bias} needs bias=True: without biases there is nothing to set")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.forget_bias = bool(bidirectional), forget_bias
        self.switches = resolve_variant(variant)
        self.backend = kernel.check_backend(backend)
        switches, directions, factory = (
            self.switches,
            2 if self.bidirectional else 1,
            {"device": device, "dtype": dtype},
        )
        rows, gates = len(switches.blocks) * hidden_size, len(switches.weighted_gates) * hidden_size

        def parameter(*shape: int, present: bool = True) -> nn.Parameter | None:
            return nn.Parameter(torch.empty(*shape, **factory)) if present else None

        # The directions in the order of the state's first dimension: layer by layer, forward first.
        self.directions: list[VariantDirection] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for reverse in range(directions):
                direction = VariantDirection(self, layer, bool(reverse), layer_input)
                shapes = {
                    "weight_ih": parameter(rows, layer_input),
                    "weight_hh": parameter(rows, hidden_size),
                    "bias": parameter(rows, present=bias),
                    "peephole": parameter(
                        len(switches.peephole_gates), hidden_size, present=bool(switches.peephole_gates)
                    ),
                    "weight_gg": parameter(
                        gates, len(switches.recurrent_gates) * hidden_size, present=switches.gate_recurrence
                    ),
                }
                for part, value in shapes.items():
                    self.register_parameter(part + direction.suffix, value)
                self.directions.append(direction)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for direction in self.directions:
            direction.reset_parameters()

    def flatten_parameters(self) -> None:
        """Accepted for nn.LSTM's callers; there is no cuDNN weight buffer to compact here."""

    def extra_repr(self) -> str:
        options = [f"{self.input_size}, {self.hidden_size}"]
        for name, default in (
            ("num_layers", 1),
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
        ):
            if getattr(self, name) != default:
                options.append(f"{name}={getattr(self, name)}")
        return ", ".join([*options, f"switches={self.switches}"])

    def forward(
        self, input: Tensor | PackedSequence, hx: State | None = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, State]:
        packed = isinstance(input, PackedSequence)
        device_type = (input.data if packed else input).device.type
        if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
            # Autocast is ignored, on both backends alike: the kernel has no half-precision code, and
            # the reference's matmuls in bfloat16 moved its float32 outputs by 1e-3 against the
            # kernel's. As for autocast's float32 ops, half-precision inputs (an autocast layer's
            # output) are cast to the weights' dtype.
            with torch.autocast(device_type, enabled=False):
                return self.forward(
                    _to_weights(input, self.weight_ih_l0), _to_weights(hx, self.weight_ih_l0), lengths=lengths
                )
        batched = True
        if packed:
            if lengths is not None:
                raise ValueError("pass lengths or a PackedSequence, not both")
            inputs, lengths = pad_packed_sequence(input)  # in the caller's batch order, as hx is
        elif input.dim() not in (2, 3):
            raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {input.dim()}D instead")
        elif input.dim() == 2:
            if lengths is not None:
                raise ValueError("lengths needs batched (3-D) input; an unbatched sequence is its own length")
            batched, inputs = False, input.unsqueeze(1)
        else:
            inputs = input.transpose(0, 1) if self.batch_first else input
        self._check_input(inputs)
        total, batch = inputs.shape[:2]
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
            if lengths.shape != (batch,) or (batch and (int(lengths.min()) < 1 or int(lengths.max()) > total)):
                raise ValueError(f"lengths must be {batch} values in [1, {total}], got {lengths.tolist()}")
            mask = (torch.arange(total).unsqueeze(1) < lengths).unsqueeze(-1).to(inputs.device)
            if not packed and batch and int(lengths.min()) < total:
                inputs = _zero_padding(inputs, mask)
        states = self._initial_states(hx, batch, inputs, batched)
        output, final_state = self._layers(inputs, states, lengths, mask)
        if packed:
            return _packed_like(input, output, lengths), final_state
        if not batched:
            return output.squeeze(1), tuple(s.squeeze(1) for s in final_state)
        return (output.transpose(0, 1) if self.batch_first else output), final_state

    def _layers(
        self, inputs: Tensor, states: list[State], lengths: Tensor | None, mask: Tensor | None
    ) -> tuple[Tensor, State]:
        """Every layer over the whole sequence, nn.LSTM's dropout between layers while training."""
        total = inputs.shape[0]
        directions = 2 if self.bidirectional else 1
        # The backward direction starts at each sequence's own end, never in the padding.
        reverse = None if lengths is None else _reverse_index(lengths, total).to(inputs.device).unsqueeze(-1)
        layer_input, finals = inputs, []
        for layer in range(self.num_layers):
            outputs = []
            for d in range(directions):
                k = layer * directions + d
                direction = self.directions[k]
                if d == 0:
                    out, final = direction(layer_input, states[k], mask)
                elif reverse is None:
                    out, final = direction(layer_input.flip(0), states[k], None)
                    out = out.flip(0)
                else:
                    flipped = layer_input.gather(0, reverse.expand_as(layer_input))
                    out, final = direction(flipped, states[k], mask)
                    out = out.gather(0, reverse.expand_as(out))
                outputs.append(out)
                finals.append(final)
            layer_input = torch.cat(outputs, dim=-1) if directions > 1 else outputs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, self.dropout, training=True)
        return layer_input, tuple(torch.stack(parts) for parts in zip(*finals))

    def _check_input(self, inputs: Tensor) -> None:
        """nn.LSTM's checks and exception types, and what nn.LSTM leaves to its backends."""
        weight = self.weight_ih_l0
        if inputs.shape[-1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {inputs.shape[-1]}"
            )
        if inputs.dtype != weight.dtype:
            raise ValueError(
                f"RNN input dtype ({inputs.dtype}) does not match weight dtype ({weight.dtype}). "
                f"Convert input: input.to({weight.dtype}), or convert model: model.to({inputs.dtype})"
            )
        if inputs.device != weight.device:
            raise RuntimeError(
                f"Input and parameter tensors are not at the same device, found input tensor at {inputs.device} "
                f"and parameter tensor at {weight.device}"
            )
        if inputs.shape[0] == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in LSTM, got an input with no time steps")

    def _initial_states(self, hx: State | None, batch: int, like: Tensor, batched: bool) -> list[State]:
        """Per direction, its part of hx (or zeros): (B, .) tensors of the input's dtype and device."""
        sizes = self.directions[0].state_sizes
        count = len(self.directions)
        if hx is None:
            return [tuple(like.new_zeros(batch, s) for s in sizes) for _ in range(count)]
        names = "(h_0, c_0, gates_0)" if len(sizes) == 3 else "(h_0, c_0)"
        if not isinstance(hx, (tuple, list)) or len(hx) != len(sizes) or not all(isinstance(t, Tensor) for t in hx):
            raise ValueError(f"initial state must be {len(sizes)} tensors {names}, got {_describe(hx)}")
        dims = 3 if batched else 2
        if any(t.dim() != dims for t in hx):
            kind = "batched 3-D" if batched else "unbatched 2-D"
            got = ", ".join(f"{t.dim()}-D" for t in hx)
            raise RuntimeError(
                f"For {kind} input, the initial state {names} should also be {dims}-D but got ({got}) tensors"
            )
        for k, (t, size) in enumerate(zip(hx, sizes)):
            expected = (count, batch, size) if batched else (count, size)
            if tuple(t.shape) != expected:
                raise RuntimeError(f"Expected hidden[{k}] size {expected}, got {list(t.shape)}")
            if t.dtype != like.dtype:
                raise RuntimeError(f"hidden[{k}] dtype ({t.dtype}) does not match input dtype ({like.dtype})")
            if t.device != like.device:
                raise RuntimeError(f"hidden[{k}] is on {t.device} but the input is on {like.device}")
        if not batched:
            hx = tuple(t.unsqueeze(1) for t in hx)
        return [tuple(t[k] for t in hx) for k in range(count)]

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        """Also takes an nn.LSTM state_dict (bias_ih + bias_hh become one bias) and a one-layer model
        saved before num_layers existed (directions.{d}.{part})."""
        for direction in self.directions:
            ih, hh, own = (f"{prefix}{name}{direction.suffix}" for name in ("bias_ih", "bias_hh", "bias"))
            if ih in state_dict and hh in state_dict and own not in state_dict:
                state_dict[own] = state_dict.pop(ih) + state_dict.pop(hh)
            if direction.layer == 0:
                for part in PARTS:
                    old = f"{prefix}directions.{int(direction.reverse)}.{part}"
                    if old in state_dict:
                        state_dict[f"{prefix}{part}{direction.suffix}"] = state_dict.pop(old)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @classmethod
    def from_torch(cls, lstm: nn.LSTM, *, variant: str | VariantSwitches = "NP", backend: str | None = None) -> LSTM:
        """A copy of a `torch.nn.LSTM` (any number of layers, with or without biases); peepholes and
        gate-to-gate matrices start at zero. A variant without a gate drops that gate's rows (CIFG
        drops the forget gate's), so only NP computes exactly what `lstm` does."""
        if not isinstance(lstm, nn.LSTM):
            raise TypeError(f"from_torch takes a torch.nn.LSTM, got {type(lstm).__name__}")
        _refuse_projections(lstm.proj_size, "from_torch cannot copy an nn.LSTM")
        ref = lstm.weight_ih_l0
        model = cls(
            lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias, lstm.batch_first, lstm.dropout,
            lstm.bidirectional, variant=variant, backend=backend, device=ref.device, dtype=ref.dtype,
        )  # fmt: skip
        with torch.no_grad():
            for direction in model.directions:
                rows = _torch_rows(direction).to(ref.device)
                direction.weight_ih.copy_(getattr(lstm, "weight_ih" + direction.suffix)[rows])
                direction.weight_hh.copy_(getattr(lstm, "weight_hh" + direction.suffix)[rows])
                if lstm.bias:
                    direction.bias.copy_(
                        (getattr(lstm, "bias_ih" + direction.suffix) + getattr(lstm, "bias_hh" + direction.suffix))[
                            rows
                        ]
                    )
                for extra in (direction.peephole, direction.weight_gg):
                    if extra is not None:
                        extra.zero_()
        return model.train(lstm.training)

    def to_torch(self) -> nn.LSTM:
        """The same network as a `torch.nn.LSTM` (NP only: no other variant is one). Its bias_ih_l{k}
        holds the bias and bias_hh_l{k} is zero."""
        if self.switches != VARIANTS["NP"]:
            raise ValueError(f"only variant NP is a torch.nn.LSTM; this one is {self.switches}")
        ref = self.weight_ih_l0
        lstm = nn.LSTM(
            self.input_size, self.hidden_size, self.num_layers, self.bias, self.batch_first, self.dropout,
            self.bidirectional, device=ref.device, dtype=ref.dtype,
        )  # fmt: skip
        with torch.no_grad():
            for direction in self.directions:
                getattr(lstm, "weight_ih" + direction.suffix).copy_(direction.weight_ih)
                getattr(lstm, "weight_hh" + direction.suffix).copy_(direction.weight_hh)
                if self.bias:
                    getattr(lstm, "bias_ih" + direction.suffix).copy_(direction.bias)
                    getattr(lstm, "bias_hh" + direction.suffix).zero_()
        return lstm.train(self.training)


def _torch_rows(direction: VariantDirection) -> Tensor:
    """The rows of nn.LSTM's fused weights that hold this direction's blocks, in its order."""
    h = direction.hidden_size
    return torch.cat([torch.arange(TORCH_BLOCKS[b] * h, (TORCH_BLOCKS[b] + 1) * h) for b in direction.switches.blocks])


def _packed_like(packed: PackedSequence, output: Tensor, lengths: Tensor) -> PackedSequence:
    """The output as a PackedSequence laid out exactly as the input was: the same batch_sizes and
    sorted/unsorted indices, rows in the same order (re-sorting would reorder tied lengths)."""
    order = packed.sorted_indices
    if order is not None:
        output, lengths = output.index_select(1, order), lengths[order.cpu()]
    data = pack_padded_sequence(output, lengths, enforce_sorted=True).data
    return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)


def _describe(hx: object) -> str:
    if isinstance(hx, (tuple, list)):
        return f"{len(hx)}: " + ", ".join(
            str(tuple(t.shape)) if isinstance(t, Tensor) else type(t).__name__ for t in hx
        )
    return type(hx).__name__


def _to_weights(value, weight: Tensor):
    """A float16/bfloat16 tensor, PackedSequence or tuple of them in the weights' dtype; others as they are."""
    if isinstance(value, (tuple, list)) and not isinstance(value, PackedSequence):
        return type(value)(_to_weights(v, weight) for v in value)
    half = isinstance(value, (Tensor, PackedSequence)) and value.data.dtype in (torch.float16, torch.bfloat16)
    return value.to(weight.dtype) if half else value


def _refuse_projections(proj_size: object, what: str) -> None:
    """nn.LSTM's proj_size is accepted only as 0: the paper's block has no projection of its output."""
    if proj_size != 0:
        raise ValueError(
            f"{what} with proj_size={proj_size}: odyssey.LSTM has no projections (the paper's block has none); "
            "project its outputs with an nn.Linear instead"
        )


def _check_arguments(input_size, hidden_size, num_layers, bias, batch_first, dropout) -> None:
    """nn.LSTM's argument checks, with its exception types and messages."""
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
        )
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
            f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
            stacklevel=3,
        )
    for name, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero")
