"""odyssey.LSTM against torch.nn.LSTM, against the paper's equations written out plainly, and gradcheck."""

import itertools
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from odyssey import LSTM, VARIANTS, VariantSwitches, resolve_variant
from odyssey.model import kernel

LENGTHS = torch.tensor([6, 3, 5, 1])


def randomise(model: nn.Module, scale: float = 0.5) -> nn.Module:
    """Non-zero everything, peepholes and gate-to-gate matrices included."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-scale, scale)
    return model


# --- nn.LSTM equivalence --------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_np_from_torch_matches_nn_lstm(bidirectional):
    torch.manual_seed(0)
    ref = nn.LSTM(5, 7, bidirectional=bidirectional)
    ours = LSTM.from_torch(ref, variant="NP")
    x = torch.randn(6, 4, 5)
    target = torch.randn(6, 4, 7 * (2 if bidirectional else 1))

    packed_out, (h_ref, c_ref) = ref(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    out_ref, _ = pad_packed_sequence(packed_out, total_length=6)
    out, (h, c) = ours(x, lengths=LENGTHS)
    torch.testing.assert_close(out, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, c_ref, atol=1e-5, rtol=1e-5)

    ((out_ref * target).sum() + h_ref.sum() + c_ref.sum()).backward()
    ((out * target).sum() + h.sum() + c.sum()).backward()
    for suffix, direction in zip(("", "_reverse"), ours.directions):
        torch.testing.assert_close(
            direction.weight_ih.grad, getattr(ref, f"weight_ih_l0{suffix}").grad, atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            direction.weight_hh.grad, getattr(ref, f"weight_hh_l0{suffix}").grad, atol=1e-5, rtol=1e-5
        )
        # One bias where torch has two: each of torch's receives the same gradient as ours.
        torch.testing.assert_close(direction.bias.grad, getattr(ref, f"bias_ih_l0{suffix}").grad, atol=1e-5, rtol=1e-5)


def test_packed_sequence_and_batch_first_agree_with_lengths():
    torch.manual_seed(1)
    model = randomise(LSTM(3, 4, variant="V", bidirectional=True))
    x = torch.randn(6, 4, 3)
    out, state = model(x, lengths=LENGTHS)
    packed_out, packed_state = model(pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    unpacked, _ = pad_packed_sequence(packed_out, total_length=6)
    torch.testing.assert_close(unpacked, out)
    for a, b in zip(state, packed_state):
        torch.testing.assert_close(a, b)
    model.batch_first = True
    out_bf, _ = model(x.transpose(0, 1), lengths=LENGTHS)
    torch.testing.assert_close(out_bf.transpose(0, 1), out)


def test_padding_never_reaches_real_steps():
    torch.manual_seed(2)
    model = randomise(LSTM(3, 4, variant="FGR", bidirectional=True))
    x = torch.randn(6, 4, 3)
    garbage = x.clone()
    mask = torch.arange(6).unsqueeze(1) >= LENGTHS
    garbage[mask] = 1e3
    out, state = model(x, lengths=LENGTHS)
    out_garbage, state_garbage = model(garbage, lengths=LENGTHS)
    torch.testing.assert_close(out, out_garbage)
    assert torch.all(out[mask] == 0)
    for a, b in zip(state, state_garbage):
        torch.testing.assert_close(a, b)


def test_initial_state_continues_a_sequence():
    torch.manual_seed(3)
    for name in ("V", "FGR"):
        model = randomise(LSTM(3, 4, variant=name))
        x = torch.randn(8, 2, 3)
        whole, _ = model(x)
        _, mid = model(x[:5])
        rest, _ = model(x[5:], mid)
        torch.testing.assert_close(rest, whole[5:])


# --- the paper's equations, one sequence and one step at a time ------------------------------


def plain_reference(direction, x_seq: torch.Tensor) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
    """The block of Greff et al. for one sequence (T, I): per-gate weights, vectors, no fusion."""
    switches, h = direction.switches, direction.hidden_size
    blocks = direction.block_slices()
    W = {b: direction.weight_ih[s] for b, s in blocks.items()}
    R = {b: direction.weight_hh[s] for b, s in blocks.items()}
    bias = {b: direction.bias[s] for b, s in blocks.items()}
    P = dict(zip(switches.peephole_gates, direction.peephole)) if direction.peephole is not None else {}
    G = {}
    for ti, target in enumerate(switches.weighted_gates):
        for si, source in enumerate(switches.recurrent_gates):
            G[target, source] = direction.weight_gg[ti * h : (ti + 1) * h, si * h : (si + 1) * h]

    y, c = torch.zeros(h, dtype=x_seq.dtype), torch.zeros(h, dtype=x_seq.dtype)
    prev = {g: torch.zeros(h, dtype=x_seq.dtype) for g in switches.recurrent_gates}

    def gate(name, x, peek):
        if name not in W:
            return torch.ones(h, dtype=x.dtype)
        a = W[name] @ x + R[name] @ y + bias[name]
        if name in P:
            a = a + P[name] * peek
        for source, value in prev.items():
            a = a + G[name, source] @ value
        return torch.sigmoid(a)

    outputs = []
    for x in x_seq:
        z = W["z"] @ x + R["z"] @ y + bias["z"]
        z = torch.tanh(z) if switches.input_activation else z
        i = gate("i", x, c)
        f = 1 - i if switches.coupled_gates else gate("f", x, c)
        c_new = z * i + c * f
        o = gate("o", x, c_new)
        y = (torch.tanh(c_new) if switches.output_activation else c_new) * o
        c = c_new
        prev = {g: {"i": i, "f": f, "o": o}[g] for g in switches.recurrent_gates}
        outputs.append(y)
    gates = (torch.cat([prev[g] for g in switches.recurrent_gates]),) if switches.recurrent_gates else ()
    return outputs, (y, c, *gates)


SWITCHES = {**VARIANTS, "CIFG+NP": resolve_variant("CIFG+NP"), "NIG+NOAF+FGR": resolve_variant("NIG+NOAF+FGR")}


@pytest.mark.parametrize("name", list(SWITCHES))
def test_every_variant_matches_the_paper_equations(name):
    torch.manual_seed(4)
    model = randomise(LSTM(3, 4, variant=SWITCHES[name], bidirectional=True)).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    out, state = model(x, lengths=LENGTHS)
    for b, length in enumerate(LENGTHS.tolist()):
        seq = x[:length, b]
        fwd, fwd_final = plain_reference(model.directions[0], seq)
        bwd, bwd_final = plain_reference(model.directions[1], seq.flip(0))
        expected = torch.cat([torch.stack(fwd), torch.stack(bwd[::-1])], dim=1)
        torch.testing.assert_close(out[:length, b], expected)
        assert torch.all(out[length:, b] == 0)
        for k, (f_part, b_part) in enumerate(zip(fwd_final, bwd_final)):
            torch.testing.assert_close(state[k][0, b], f_part)
            torch.testing.assert_close(state[k][1, b], b_part)


@pytest.mark.parametrize("name", list(SWITCHES))
def test_gradcheck_float64(name):
    torch.manual_seed(5)
    model = randomise(LSTM(2, 3, variant=SWITCHES[name], bidirectional=True)).double()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]

    def run(x, *values):
        replaced = dict(zip(names, values))
        out, state = torch.func.functional_call(model, replaced, (x,), {"lengths": torch.tensor([4, 2])})
        return (out, *state)

    assert torch.autograd.gradcheck(run, (x, *[p.detach().requires_grad_() for p in params]))


# --- parameters, switches, construction -------------------------------------------------------


@pytest.mark.parametrize("name", list(SWITCHES))
def test_parameter_count_follows_the_spec(name):
    switches = SWITCHES[name]
    model = LSTM(11, 13, variant=switches, bidirectional=True)
    assert sum(p.numel() for p in model.parameters()) == 2 * switches.parameter_count(11, 13)


def test_parameter_counts_of_the_presets():
    i, h = 11, 13
    count = {name: switches.parameter_count(i, h) for name, switches in VARIANTS.items()}
    gate = h * (i + h + 1)  # one gate's W, R and bias
    assert count["V"] == 4 * gate + 3 * h
    assert count["NP"] == count["V"] - 3 * h
    assert count["FGR"] == count["V"] + 9 * h * h
    assert count["CIFG"] == count["V"] - gate - h
    for name in ("NIG", "NFG", "NOG"):
        assert count[name] == count["V"] - gate - h
    assert count["NIAF"] == count["NOAF"] == count["V"]
    assert resolve_variant("CIFG+NP").parameter_count(i, h) == 3 * gate


PRESETS = [name for name in VARIANTS if name != "V"]
COMBINATIONS = ["+".join(c) for r in range(1, len(PRESETS) + 1) for c in itertools.combinations(PRESETS, r)]


def test_every_combination_is_refused_for_a_reason_or_runs_alike_on_both_backends():
    """All 255 '+' combinations of the eight presets (issue 25: "FGR+NIG+NFG+NOG" was accepted and
    crashed the reference). Refused: CIFG without its input or forget gate, and FGR or NP where
    NIG+NFG+NOG leaves no gate for them to change (the same network under a second name). Every
    other one gives the kernel's outputs, states and gradients on the reference, in float64 (they
    differed by 1.8e-15 of 1 + |value| at most here), and the paper's equations on the first sequence."""
    x = torch.randn(4, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(16))
    lengths = torch.tensor([4, 3])
    accepted = 0
    for variant in COMBINATIONS:
        parts = set(variant.split("+"))
        gateless = {"NIG", "NFG", "NOG"} <= parts
        reasons = [
            ("CIFG" in parts and parts & {"NIG", "NFG"}, "coupled_gates"),
            (gateless and "FGR" in parts, "FGR feeds"),
            (gateless and "NP" in parts, "NP removes"),
        ]
        expected = [message for refused, message in reasons if refused]
        if expected:
            with pytest.raises(ValueError, match=expected[0]):
                resolve_variant(variant)
            continue
        accepted += 1
        results = []
        for backend in BACKENDS:
            torch.manual_seed(17)
            model = use(randomise(LSTM(2, 3, variant=variant, bidirectional=True)).double(), backend)
            inputs = x.clone().requires_grad_()
            out, state = model(inputs, lengths=lengths)
            (out.square().sum() + sum(s.sum() for s in state)).backward()
            results.append([out, *state, inputs.grad, *(p.grad for p in model.parameters())])
        for got, expected_value in zip(*results, strict=True):
            torch.testing.assert_close(got, expected_value, msg=lambda m, variant=variant: f"{variant}: {m}")
        steps, _ = plain_reference(model.directions[0], x[:, 0])
        torch.testing.assert_close(out[:, 0, :3], torch.stack(steps), msg=lambda m, variant=variant: f"{variant}: {m}")
    assert accepted == 255 - 96 - 12  # CIFG refuses 96, a gateless FGR or NP 12 more


def test_variants_own_only_the_parameters_they_use():
    cifg = LSTM(3, 4, variant="CIFG").directions[0]
    assert cifg.switches.blocks == ("i", "z", "o") and cifg.peephole.shape == (2, 4)
    np_direction = LSTM(3, 4, variant="NP").directions[0]
    assert np_direction.peephole is None and np_direction.weight_gg is None
    fgr = LSTM(3, 4, variant="FGR").directions[0]
    assert fgr.weight_gg.shape == (12, 12)


def test_cellspec_is_kept_as_an_alias_of_variant_switches():
    import odyssey

    assert odyssey.CellSpec is VariantSwitches and "CellSpec" not in odyssey.__all__


def test_combinations_and_bad_names():
    assert resolve_variant("cifg+np") == VariantSwitches(coupled_gates=True, peepholes=False)
    assert resolve_variant(VariantSwitches(output_gate=False)) == VARIANTS["NOG"]
    with pytest.raises(ValueError, match="unknown variant 'XYZ'"):
        resolve_variant("V+XYZ")
    with pytest.raises(ValueError, match="coupled_gates"):
        resolve_variant("CIFG+NFG")


def test_forget_bias_initialisation():
    v = LSTM(3, 4, variant="V", forget_bias=1.0).directions[0]
    blocks = v.block_slices()
    assert torch.all(v.bias[blocks["f"]] == 1.0) and torch.all(v.bias[blocks["i"]] == 0.0)
    cifg = LSTM(3, 4, variant="CIFG", forget_bias=1.0).directions[0]
    f = 1 - torch.sigmoid(cifg.bias[cifg.block_slices()["i"]])
    torch.testing.assert_close(f, torch.sigmoid(torch.ones(4)))


def test_from_torch_drops_rows_of_missing_gates():
    ref = nn.LSTM(3, 4)
    cifg = LSTM.from_torch(ref, variant="CIFG").directions[0]
    rows = torch.cat([torch.arange(0, 4), torch.arange(8, 16)])  # torch's i, g, o blocks
    torch.testing.assert_close(cifg.weight_ih, ref.weight_ih_l0[rows])
    assert torch.all(cifg.peephole == 0)


def test_proj_size_is_refused_with_one_clear_message():
    """nn.LSTM's proj_size, also where it sits in nn.LSTM's positional order (issue 25: a TypeError)."""
    reason = "proj_size=2: odyssey.LSTM has no projections"
    with pytest.raises(ValueError, match="from_torch cannot copy an nn.LSTM with " + reason):
        LSTM.from_torch(nn.LSTM(3, 4, num_layers=2, proj_size=2))
    with pytest.raises(ValueError, match="odyssey.LSTM cannot be built with " + reason):
        LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match=reason):
        LSTM(3, 4, 1, True, False, 0.0, False, 2)
    assert LSTM(3, 4, proj_size=0).hidden_size == 4


def test_bad_inputs_are_clear_errors():
    model = LSTM(3, 4)
    with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size. Expected 3, got 4"):
        model(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="lengths must be 2 values"):
        model(torch.randn(5, 2, 3), lengths=torch.tensor([6, 2]))
    with pytest.raises(ValueError, match="initial state"):
        model(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4),))


# --- results that once were silently wrong (issue 12), on the default backend and the reference --

BACKENDS = ["auto", "reference"]  # auto: the C++ kernel wherever it builds


def use(model: LSTM, backend: str) -> LSTM:
    for direction in model.directions:
        direction.backend = backend
    return model


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward_keeps_every_path(backend):
    """A gradient penalty: create_graph=True must give gradients that are themselves differentiable."""
    torch.manual_seed(6)
    ref = nn.LSTM(3, 5)
    ours = use(LSTM.from_torch(ref, variant="NP"), backend)
    x = torch.randn(7, 2, 3)
    penalties = []
    for model, weight in ((ref, ref.weight_hh_l0), (ours, ours.directions[0].weight_hh)):
        out, _ = model(x)
        (grad,) = torch.autograd.grad(out.pow(2).sum(), weight, create_graph=True)
        grad.pow(2).sum().backward()
        penalties.append(weight.grad)
    torch.testing.assert_close(penalties[1], penalties[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["V", "FGR", "CIFG+NP"])
def test_gradgradcheck_float64(name, backend):
    torch.manual_seed(7)
    model = use(randomise(LSTM(2, 3, variant=SWITCHES[name], bidirectional=True)).double(), backend)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in model.named_parameters()]

    def run(x, *values):
        out, state = torch.func.functional_call(
            model, dict(zip(names, values)), (x,), {"lengths": torch.tensor([3, 2])}
        )
        return (out, *state)

    values = [p.detach().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradgradcheck(run, (x, *values))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_output_rows_are_in_nn_lstms_order(backend, enforce_sorted):
    """Tied lengths and more than 16 sequences: a re-sort would put out.data's rows in another order."""
    torch.manual_seed(8)
    ref = nn.LSTM(3, 4, bidirectional=True)
    ours = use(LSTM.from_torch(ref), backend)
    for batch in (17, 32):
        lengths = torch.randint(1, 5, (batch,))
        if enforce_sorted:
            lengths = lengths.sort(descending=True).values
        packed = pack_padded_sequence(torch.randn(4, batch, 3), lengths, enforce_sorted=enforce_sorted)
        (out_ref, (h_ref, c_ref)), (out, (h, c)) = ref(packed), ours(packed)
        torch.testing.assert_close(out.data, out_ref.data, atol=1e-5, rtol=1e-5)
        assert torch.equal(out.batch_sizes, out_ref.batch_sizes)
        for a, b in ((out.sorted_indices, out_ref.sorted_indices), (out.unsorted_indices, out_ref.unsorted_indices)):
            assert (a is None and b is None) or torch.equal(a, b)
        torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(c, c_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_from_torch_without_bias_has_none_and_trains_none(backend):
    torch.manual_seed(9)
    ref = nn.LSTM(3, 4, bias=False)
    ours = use(LSTM.from_torch(ref), backend)
    assert not any("bias" in name for name, _ in ours.named_parameters())
    x, target = torch.randn(5, 2, 3), torch.randn(5, 2, 4)
    for model in (ref, ours):  # one SGD step each: a hidden zero bias would start to train here
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        (model(x)[0] * target).sum().backward()
        optimizer.step()
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_own_their_storage(backend):
    """Outputs, states and gradients are never views into the kernel's pooled scratch: torch.save of
    a result writes its own bytes only, and dropping it frees them."""
    torch.manual_seed(10)
    model = use(LSTM(30, 64, variant="FGR"), backend)
    x = torch.randn(200, 16, 30, requires_grad=True)  # buffers well above the pool's 128 KiB floor
    out, state = model(x)
    (out.sum() + sum(s.sum() for s in state)).backward()
    with torch.no_grad():
        small, small_state = model(x[:50].detach())
    results = [out, *state, small, *small_state, x.grad, *(p.grad for p in model.parameters())]
    for tensor in results:
        assert tensor.untyped_storage().nbytes() == tensor.nbytes, tuple(tensor.shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["V", "FGR"])
def test_nan_and_inf_in_the_padding_reach_no_result(backend, name):
    """Padding holds whatever the caller left there (issue 25): NaN and inf past `lengths` must give
    the same outputs, states and gradients as zeros there, and zero outputs on the padded steps.
    On the kernel every weight_ih gradient was NaN (NaN x a zero gradient in dW_ih = DA^T X) while
    the loss stayed finite; on the reference the padded outputs were NaN (NaN x mask 0)."""
    torch.manual_seed(13)
    model = use(randomise(LSTM(3, 4, num_layers=2, bidirectional=True, variant=name)).double(), backend)
    padded = torch.arange(6).unsqueeze(1) >= LENGTHS
    clean = torch.randn(6, 4, 3, dtype=torch.float64).masked_fill(padded.unsqueeze(-1), 0)
    dirty = clean.clone()
    dirty[padded] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)
    target = torch.randn(6, 4, 8, dtype=torch.float64)
    results = []
    for x in (clean, dirty):
        model.zero_grad(set_to_none=True)
        x = x.clone().requires_grad_()
        out, state = model(x, lengths=LENGTHS)
        ((out * target).sum() + sum(s.sum() for s in state)).backward()
        results.append([out, *state, x.grad, *(p.grad for p in model.parameters())])
        assert torch.all(out[padded] == 0) and torch.all(x.grad[padded] == 0)
    for got, expected in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)  # the very same computation


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_backward_matches_the_reference(backend):
    """is_grads_batched=True and jacobian(vectorize=True) run the backward under vmap (issue 25: the
    kernel could not read the gradients, BatchedTensors without storage); vmap of autograd.grad too."""
    lengths = torch.tensor([5, 3])
    results = {}
    for which in (backend, "reference"):
        torch.manual_seed(14)
        model = use(randomise(LSTM(3, 4, bidirectional=True, variant="FGR")).double(), which)
        x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
        jacobian = torch.autograd.functional.jacobian(
            lambda x, model=model: model(x, lengths=lengths)[0], x, vectorize=True
        )
        out, _ = model(x, lengths=lengths)
        vectors = torch.randn(3, *out.shape, dtype=torch.float64)
        wrt = [x, model.weight_hh_l0, model.weight_gg_l0_reverse]
        batched = torch.autograd.grad(out, wrt, vectors, is_grads_batched=True, retain_graph=True)
        vjp = torch.func.vmap(lambda v, out=out, wrt=wrt: torch.autograd.grad(out, wrt, v, retain_graph=True))
        mapped = vjp(vectors)
        one = torch.autograd.grad(out, wrt, vectors[1])
        results[which] = [jacobian, *batched, *mapped, *one]
        for many, single in zip(batched, one):
            torch.testing.assert_close(many[1], single)
    for got, expected in zip(results[backend], results["reference"], strict=True):
        torch.testing.assert_close(got, expected)


def test_a_trace_of_the_reference_says_it_runs_one_length_only():
    """torch.jit.trace unrolls the reference's Python loop over the example's steps (issue 25): it must
    say so when tracing; the kernel's trace is one call that runs any length."""
    torch.manual_seed(18)
    model = LSTM(3, 4, variant="FGR")
    example, longer = torch.randn(5, 2, 3), torch.randn(8, 2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(use(model, "reference"), example, check_trace=False)
    said = [
        str(w.message)
        for w in caught
        if issubclass(w.category, torch.jit.TracerWarning) and "odyssey.LSTM" in str(w.message)
    ]
    assert said and "runs only inputs of exactly 5 steps" in said[0]
    torch.testing.assert_close(traced(example)[0], model(example)[0])
    with pytest.raises(RuntimeError, match="Expected 5 elements in a list"):
        traced(longer)
    if kernel.use_kernel("auto", example):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(use(model, "auto"), example, check_trace=False)
        torch.testing.assert_close(traced(longer)[0], model(longer)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_autocast_is_ignored(backend):
    """Under autocast both backends compute what they compute without it, in float32 (issue 25: the
    kernel ignored it while the reference's matmuls ran in bfloat16, 1e-3 away); a bfloat16 input,
    an autocast layer's output, is taken as autocast's float32 ops take it."""
    torch.manual_seed(19)
    model = use(randomise(LSTM(3, 4, variant="FGR", bidirectional=True)), backend)
    x, lengths = torch.randn(6, 2, 3), torch.tensor([6, 4])
    out, state = model(x, lengths=lengths)
    half = x.bfloat16()
    half_out, _ = model(half.float(), lengths=lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast_out, cast_state = model(x, lengths=lengths)
        from_half, _ = model(half, lengths=lengths)
    for got, expected in zip((cast_out, *cast_state, from_half), (out, *state, half_out), strict=True):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=0, atol=0)  # the very same float32 computation


# --- torch.nn.LSTM's interface (more in tests/model/test_nn_lstm_peer.py) ----------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_and_packing_match_a_multi_layer_nn_lstm(backend):
    torch.manual_seed(11)
    ref = nn.LSTM(3, 4, num_layers=3, bidirectional=True, batch_first=True)
    ours = use(LSTM.from_torch(ref), backend)
    x, lengths = torch.randn(5, 6, 3), torch.tensor([3, 6, 1, 6, 2])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    state = (torch.randn(6, 5, 4), torch.randn(6, 5, 4))
    (out_ref, final_ref), (out, final) = ref(packed, state), ours(packed, state)
    torch.testing.assert_close(out.data, out_ref.data, atol=1e-5, rtol=1e-5)
    for a, b in zip(final, final_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    padded, _ = pad_packed_sequence(out_ref, batch_first=True)
    by_lengths, by_lengths_final = ours(x, state, lengths=lengths)
    torch.testing.assert_close(by_lengths, padded, atol=1e-5, rtol=1e-5)
    for a, b in zip(by_lengths_final, final_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_the_networks_call_and_fgr_state_shapes():
    """How odyssey.model.network builds its layers: keywords after the sizes, a third FGR state."""
    model = LSTM(5, 6, num_layers=2, dropout=0.25, bidirectional=True, variant="FGR", forget_bias=1.0)
    assert (model.num_layers, model.dropout, model.bidirectional) == (2, 0.25, True)
    for direction in model.directions:
        assert torch.all(direction.bias[direction.block_slices()["f"]] == 1.0)
    assert [direction.input_size for direction in model.directions] == [5, 5, 12, 12]
    out, state = model(torch.randn(7, 3, 5), lengths=torch.tensor([7, 2, 5]))
    assert out.shape == (7, 3, 12) and [tuple(s.shape) for s in state] == [(4, 3, 6), (4, 3, 6), (4, 3, 18)]
    with pytest.raises(ValueError, match="forget_bias=1.0 needs bias=True"):
        LSTM(5, 6, bias=False, forget_bias=1.0)


def test_a_checkpoint_from_before_num_layers_still_loads():
    torch.manual_seed(12)
    model = randomise(LSTM(3, 4, bidirectional=True, variant="FGR"))
    old = {
        f"directions.{int(direction.reverse)}.{part}": getattr(model, part + direction.suffix)
        for direction in model.directions
        for part in ("weight_ih", "weight_hh", "bias", "peephole", "weight_gg")
    }
    fresh = LSTM(3, 4, bidirectional=True, variant="FGR")
    fresh.load_state_dict(old)
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(fresh(x)[0], model(x)[0])
