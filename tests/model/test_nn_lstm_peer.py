"""PyTorch's own nn.LSTM tests, adapted to odyssey.LSTM and run on both backends.

Adapted from PyTorch's test/test_modules.py (the generic module tests, over the nn.LSTM samples and
error inputs of torch/testing/_internal/common_modules.py: bias x batch_first x bidirectional, two
layers, unbatched inputs), test/test_nn.py (argument checks, initial state, dropout, variable
sequences, retained graphs, weight norm, device checks) and test/test_autograd.py (LSTM grad and
gradgrad). NP is nn.LSTM, so it is compared with nn.LSTM itself; the other variants are checked
for the same properties where they mean something.

Deliberate differences from nn.LSTM:
- one bias per gate, `bias_l{k}` (the paper's), not `bias_ih_l{k}` + `bias_hh_l{k}`: loading an
  nn.LSTM state_dict adds the two, `to_torch()` puts the bias in bias_ih and zeros in bias_hh;
- biases start at zero (forget_bias on the forget gate), not uniform in +-1/sqrt(H);
- no `proj_size` (a non-zero one is a ValueError, from the constructor and from from_torch), no
  `_flat_weights`; `flatten_parameters()` does nothing;
- FGR variants carry a third state tensor (the previous gate activations), same leading shape;
- an extra `lengths=` keyword; padded steps output zeros, as pad_packed_sequence gives them;
- a wrong number of state tensors is a ValueError (nn.LSTM fails unpacking them), a state whose
  dtype differs from the input's a RuntimeError that says so (nn.LSTM: a oneDNN message);
- off the CPU there is no fused kernel: "auto" warns once and runs the autograd reference.
"""

import io
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from odyssey import LSTM
from odyssey.model.kernel import dispatch

VARIANTS = ["NP", "V", "CIFG", "FGR"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")


@pytest.fixture(params=["fast", "reference"])
def backend(request):
    if request.param == "fast":
        request.getfixturevalue("kernel")  # built, or skipped where there is no toolchain
    return request.param


def copy_of(ref: nn.LSTM, backend: str) -> LSTM:
    return LSTM.from_torch(ref, variant="NP", backend=backend)


def close(got, expected, tol=1e-5):
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)


def randomised(model: LSTM) -> LSTM:
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    return model


# --- test_modules: the nn.LSTM samples of common_modules ----------------------------------------

SAMPLES = [
    (bias, batch_first, bidirectional)
    for bias in (False, True)
    for batch_first in (False, True)
    for bidirectional in (False, True)
]


def sample_pair(seed: int, backend: str, **options) -> tuple[nn.LSTM, LSTM, int]:
    """common_modules' nn.LSTM sample (2 inputs, 3 units, 2 layers), its NP copy and its directions."""
    torch.manual_seed(seed)
    ref = nn.LSTM(2, 3, num_layers=2, **options)
    return ref, copy_of(ref, backend), 2 if options["bidirectional"] else 1


@pytest.mark.parametrize("bias,batch_first,bidirectional", SAMPLES)
def test_forward_and_backward_match_nn_lstm(backend, bias, batch_first, bidirectional):
    ref, ours, d = sample_pair(0, backend, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    x = torch.randn((4, 5, 2) if batch_first else (5, 4, 2))
    hx = (torch.randn(2 * d, 4, 3), torch.randn(2 * d, 4, 3))
    results = []
    for model in (ref, ours):
        xs, hs = x.clone().requires_grad_(), tuple(h.clone().requires_grad_() for h in hx)
        out, (h, c) = model(xs, hs)
        (out.pow(2).sum() + h.sum() + 2 * c.sum()).backward()
        results.append([out, h, c, xs.grad, *(s.grad for s in hs)])
    for got, expected in zip(*results, strict=True):
        close(got, expected)
    for name, p in ours.named_parameters():
        if name.startswith("bias"):
            close(p.grad, getattr(ref, name.replace("bias", "bias_ih")).grad)
        else:
            close(p.grad, getattr(ref, name).grad)


@pytest.mark.parametrize("bias,batch_first,bidirectional", SAMPLES)
def test_unbatched_input_is_a_batch_of_one(backend, bias, batch_first, bidirectional):
    """no_batch_dim_reference_lstm: (T, I) with (L*D, H) states runs as (T, 1, I) with (L*D, 1, H)."""
    ref, ours, d = sample_pair(1, backend, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    x, hx = torch.randn(3, 2), (torch.randn(2 * d, 3), torch.randn(2 * d, 3))
    for state in (None, hx):
        out, (h, c) = ours(x, state)
        out_ref, (h_ref, c_ref) = ref(x, state)
        assert out.shape == (3, 3 * d) and h.shape == c.shape == (2 * d, 3)
        close(out, out_ref)
        close(h, h_ref)
        close(c, c_ref)
        batched = ours(
            x.unsqueeze(0 if batch_first else 1), None if state is None else tuple(s.unsqueeze(1) for s in state)
        )
        close(out, batched[0].squeeze(0 if batch_first else 1))


@pytest.mark.parametrize("variant", ["NP", "FGR"])
def test_grad_and_gradgrad(backend, variant):
    """test_modules' test_grad/test_gradgrad and test_autograd's test_LSTM_grad_and_gradgrad: input,
    initial state and every parameter, float64, two layers (tests/model/test_lstm.py does the others)."""
    torch.manual_seed(2)
    model = randomised(LSTM(2, 2, num_layers=2, variant=variant, backend=backend, dtype=torch.float64))
    names = [n for n, _ in model.named_parameters()]
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    sizes = model.directions[0].state_sizes
    state = [torch.randn(2, 2, s, dtype=torch.float64, requires_grad=True) for s in sizes]

    def run(x, *values):
        params = dict(zip(names, values[: len(names)]))
        out, final = torch.func.functional_call(model, params, (x, tuple(values[len(names) :])))
        return (out, *final)

    inputs = (x, *[p.detach().requires_grad_() for p in model.parameters()], *state)
    assert torch.autograd.gradcheck(run, inputs)
    assert torch.autograd.gradgradcheck(run, inputs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_factory_kwargs_and_to(backend, variant):
    model = LSTM(3, 4, num_layers=2, variant=variant, backend=backend, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in model.parameters())
    out, state = model(torch.randn(5, 2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64 and all(s.dtype == torch.float64 for s in state)
    model.float()
    assert model(torch.randn(5, 2, 3))[0].dtype == torch.float32
    meta = LSTM(3, 4, variant=variant, device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_repr_pickle_and_state_dict_round_trip(backend, variant):
    torch.manual_seed(3)
    model = randomised(LSTM(3, 4, num_layers=2, bidirectional=True, variant=variant, backend=backend))
    assert "num_layers=2" in repr(model) and "bidirectional=True" in repr(model)
    x = torch.randn(5, 2, 3)
    expected = model(x)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    fresh = LSTM(3, 4, num_layers=2, bidirectional=True, variant=variant, backend=backend)
    fresh.load_state_dict(model.state_dict())
    for other in (loaded, fresh):
        out, state = other(x)
        close(out, expected[0])
        for a, b in zip(state, expected[1], strict=True):
            close(a, b)


@pytest.mark.parametrize("variant", VARIANTS)
def test_non_contiguous_tensors(backend, variant):
    """Inputs, states and weights that are strided views (a transposed weight, a sliced state)."""
    torch.manual_seed(4)
    model = randomised(LSTM(3, 4, num_layers=2, variant=variant, backend=backend))
    x = torch.randn(5, 2, 3)
    state = tuple(torch.randn(2, 2, s) for s in model.directions[0].state_sizes)
    expected = model(x, state)
    x_strided = torch.randn(2, 5, 3).transpose(0, 1).copy_(x)
    state_strided = tuple(
        torch.randn(2, 2, 2 * s)[..., ::2].copy_(s_) for s, s_ in zip(model.directions[0].state_sizes, state)
    )
    assert not x_strided.is_contiguous() and not any(s.is_contiguous() for s in state_strided)
    weight = model.weight_hh_l1
    model.weight_hh_l1 = nn.Parameter(weight.detach().t().contiguous().t())  # same values, transposed layout
    assert not model.weight_hh_l1.is_contiguous()
    out, final = model(x_strided, state_strided)
    close(out, expected[0])
    for a, b in zip(final, expected[1], strict=True):
        close(a, b)
    out.sum().backward()
    assert model.weight_hh_l1.grad is not None and model.weight_hh_l1.grad.abs().sum() > 0


def test_train_and_eval_differ_only_with_dropout(backend):
    torch.manual_seed(5)
    model = LSTM(3, 4, num_layers=2, dropout=0.5, backend=backend)
    x = torch.randn(5, 2, 3)
    model.eval()
    close(model(x)[0], model(x)[0], tol=0)
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.dropout = 0.0  # test_RNN_change_dropout: the attribute is read at every call
    close(model(x)[0], model.eval()(x)[0], tol=0)


# --- test_modules: error inputs (module_error_inputs_torch_nn_RNN_GRU) ----------------------------

CONSTRUCTION_ERRORS = [
    ((10, 0, 1), {}, ValueError, "hidden_size must be greater than zero"),
    ((10, 10, 0), {}, ValueError, "num_layers must be greater than zero"),
    ((3, 5), {"bias": 0}, TypeError, "bias should be of type bool, got: int"),
    ((3, 5), {"bias": "True"}, TypeError, "bias should be of type bool, got: str"),
    ((3, 5), {"batch_first": 1}, TypeError, "batch_first should be of type bool, got: int"),
    ((3.0, 5), {}, TypeError, "input_size should be of type int, got: float"),
    (("10", 5), {}, TypeError, "input_size should be of type int, got: str"),
    ((0, 5), {}, ValueError, "input_size must be greater than zero"),
    ((-1, 5), {}, ValueError, "input_size must be greater than zero"),
    ((3, 5.0), {}, TypeError, "hidden_size should be of type int, got: float"),
    ((3, 5, 2), {"dropout": 1.5}, ValueError, "dropout should be a number in range"),
]


@pytest.mark.parametrize("args,kwargs,error,message", CONSTRUCTION_ERRORS)
def test_construction_errors_are_nn_lstms(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        nn.LSTM(*args, **kwargs)
    with pytest.raises(error, match=message):
        LSTM(*args, **kwargs)


def test_dropout_on_one_layer_warns_like_nn_lstm():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        LSTM(3, 4, dropout=0.5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_errors(backend, variant):
    """test_rnn_args_check and the dtype-mismatch sample: the same exception types as nn.LSTM."""
    model = LSTM(3, 4, num_layers=2, variant=variant, backend=backend)
    sizes = model.directions[0].state_sizes
    good = tuple(torch.zeros(2, 2, s) for s in sizes)
    with pytest.raises(
        ValueError, match=r"RNN input dtype .* does not match weight dtype .* Convert input: input\.to\("
    ):
        model(torch.randn(5, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D instead"):
        model(torch.randn(5, 2, 3, 1))
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 3, got 2"):
        model(torch.randn(5, 2, 2))
    with pytest.raises(RuntimeError, match="sequence length to be larger than 0"):
        model(torch.randn(0, 2, 3))
    for k in range(len(sizes)):
        wrong_batch = tuple(torch.zeros(2, 3 if j == k else 2, s) for j, s in enumerate(sizes))
        with pytest.raises(
            RuntimeError, match=rf"Expected hidden\[{k}\] size \(2, 2, {sizes[k]}\), got \[2, 3, {sizes[k]}\]"
        ):
            model(torch.randn(5, 2, 3), wrong_batch)
        wrong_layers = tuple(torch.zeros(1 if j == k else 2, 2, s) for j, s in enumerate(sizes))
        with pytest.raises(RuntimeError, match=rf"Expected hidden\[{k}\] size"):
            model(torch.randn(5, 2, 3), wrong_layers)
        wrong_dtype = tuple(g.double() if j == k else g for j, g in enumerate(good))
        with pytest.raises(RuntimeError, match=rf"hidden\[{k}\] dtype \(torch.float64\) does not match input dtype"):
            model(torch.randn(5, 2, 3), wrong_dtype)
    with pytest.raises(RuntimeError, match="For unbatched 2-D input"):
        model(torch.randn(5, 3), good)
    with pytest.raises(RuntimeError, match="For batched 3-D input"):
        model(torch.randn(5, 2, 3), tuple(g[:, 0] for g in good))
    with pytest.raises(ValueError, match=f"initial state must be {len(sizes)} tensors"):
        model(torch.randn(5, 2, 3), good[:1])


def test_input_on_another_device_than_the_weights(backend):
    """test_rnn_check_device, with the meta device standing in for a second one."""
    model = LSTM(3, 4, backend=backend, device="meta")
    with pytest.raises(RuntimeError, match="Input and parameter tensors are not at the same device"):
        model(torch.randn(5, 2, 3))


# --- test_nn: RNN behaviour ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_initial_hidden_state_of_zeros_is_none(backend, variant):
    torch.manual_seed(6)
    model = randomised(LSTM(3, 4, num_layers=2, bidirectional=True, variant=variant, backend=backend))
    x = torch.randn(5, 2, 3)
    zeros = tuple(torch.zeros(4, 2, s) for s in model.directions[0].state_sizes)
    with_zeros, without = model(x, zeros), model(x)
    close(with_zeros[0], without[0], tol=0)
    for a, b in zip(with_zeros[1], without[1], strict=True):
        close(a, b, tol=0)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_dropout_between_layers_matches_nn_lstm(backend, p):
    """test_RNN_dropout's end points, where dropout is deterministic: p = 1 zeroes all of the first
    layer's output before the second layer, p = 0 leaves it; the last layer's output never drops."""
    torch.manual_seed(7)
    ref = nn.LSTM(3, 4, num_layers=2, dropout=p)
    ours = copy_of(ref, backend)
    x = torch.randn(5, 2, 3)
    for mode in (True, False):
        ref.train(mode), ours.train(mode)
        out, (h, c) = ours(x)
        out_ref, (h_ref, c_ref) = ref(x)
        close(out, out_ref)
        close(h, h_ref)
        close(c, c_ref)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_variable_sequence(backend, variant, bidirectional):
    """_test_variable_sequence: a packed batch of different lengths equals each sequence alone."""
    torch.manual_seed(8)
    model = randomised(LSTM(3, 4, num_layers=2, bidirectional=bidirectional, variant=variant, backend=backend))
    lengths = [6, 5, 5, 2, 1]
    sequences = [torch.randn(n, 3) for n in lengths]
    packed_out, packed_state = model(pack_sequence(sequences))
    padded, got_lengths = pad_packed_sequence(packed_out)
    assert got_lengths.tolist() == lengths
    for b, seq in enumerate(sequences):
        alone, state = model(seq.unsqueeze(1))
        close(padded[: len(seq), b : b + 1], alone)
        assert torch.all(padded[len(seq) :, b] == 0)
        for a, s in zip(packed_state, state, strict=True):
            close(a[:, b : b + 1], s)


@pytest.mark.parametrize("variant", VARIANTS)
def test_retain_graph_gives_the_same_gradients_twice(backend, variant):
    """test_rnn_retain_variables."""
    torch.manual_seed(9)
    model = randomised(LSTM(3, 4, num_layers=2, variant=variant, backend=backend))
    x = torch.randn(5, 2, 3, requires_grad=True)
    out, _ = model(x)
    grads = []
    for _ in range(2):
        model.zero_grad()
        x.grad = None
        out.sum().backward(retain_graph=True)
        grads.append([x.grad.clone(), *(p.grad.clone() for p in model.parameters())])
    for a, b in zip(*grads, strict=True):
        close(a, b, tol=0)


def test_weight_norm_on_a_recurrent_weight(backend):
    """test_rnn_weight_norm: a parametrized weight is what the cell computes with."""
    torch.manual_seed(10)
    model = torch.nn.utils.parametrizations.weight_norm(LSTM(3, 4, num_layers=2, backend=backend), name="weight_hh_l0")
    x = torch.randn(5, 2, 3)
    before = model(x)[0]
    model(x)[0].sum().backward()
    original = model.parametrizations.weight_hh_l0.original0
    assert original.grad is not None and original.grad.abs().sum() > 0
    with torch.no_grad():
        original.mul_(2.0)
    assert not torch.allclose(model(x)[0], before)


def test_empty_batch_and_flatten_parameters(backend):
    torch.manual_seed(11)
    ref = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ours = copy_of(ref, backend)
    ours.flatten_parameters()
    out, (h, c) = ours(torch.randn(5, 0, 3))
    out_ref, (h_ref, _) = ref(torch.randn(5, 0, 3))
    assert out.shape == out_ref.shape == (5, 0, 8) and h.shape == h_ref.shape == c.shape == (4, 0, 4)


def test_state_dict_moves_both_ways_between_nn_lstm_and_np(backend):
    torch.manual_seed(12)
    ref = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    ours = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, variant="NP", backend=backend)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 3)
    close(ours(x)[0], ref(x)[0])
    back = ours.to_torch()
    close(back(x)[0], ref(x)[0])
    again = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    again.load_state_dict(back.state_dict())
    close(again(x)[0], ref(x)[0])
    with pytest.raises(ValueError, match="only variant NP"):
        LSTM(3, 4, variant="V").to_torch()
    with pytest.raises(RuntimeError, match="peephole_l0"):  # a V model needs its peepholes
        LSTM(3, 4, num_layers=2, bidirectional=True, variant="V").load_state_dict(ref.state_dict())


# --- devices --------------------------------------------------------------------------------


def test_auto_off_the_cpu_warns_once_and_runs_the_reference(monkeypatch):
    monkeypatch.setattr(dispatch, "_warned", set())
    model = LSTM(3, 4, num_layers=2, variant="FGR", backend="auto", device="meta")
    x = torch.randn(5, 2, 3, device="meta")
    with pytest.warns(RuntimeWarning, match="no fused meta kernel"):
        out, state = model(x)
    assert out.shape == (5, 2, 4) and [s.shape for s in state] == [(2, 2, 4), (2, 2, 4), (2, 2, 12)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x)
    with pytest.raises(ValueError, match="no fused meta kernel"):
        LSTM(3, 4, backend="fast", device="meta")(x)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("variant", VARIANTS)
def test_cuda_matches_the_cpu(variant, monkeypatch):
    """test_cpu_gpu_parity: `.to("cuda")` moves every parameter; "auto" warns and runs the reference."""
    monkeypatch.setattr(dispatch, "_warned", set())
    torch.manual_seed(13)
    model = randomised(LSTM(3, 4, num_layers=2, bidirectional=True, variant=variant, backend="auto"))
    x = torch.randn(5, 2, 3)
    expected = model(x, lengths=torch.tensor([5, 3]))
    gpu = model.to("cuda")
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    with pytest.warns(RuntimeWarning, match="no fused cuda kernel"):
        out, state = gpu(x.cuda(), lengths=torch.tensor([5, 3]))
    close(out.cpu(), expected[0])
    for a, b in zip(state, expected[1], strict=True):
        close(a.cpu(), b)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in gpu.parameters())


@pytest.mark.cuda
@needs_cuda
def test_cuda_device_argument_and_nn_lstm_parity():
    torch.manual_seed(14)
    ref = nn.LSTM(3, 4, num_layers=2, device="cuda")
    ours = LSTM.from_torch(ref)
    assert all(p.device.type == "cuda" for p in ours.parameters())
    x = torch.randn(5, 2, 3, device="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        close(ours(x)[0], ref(x)[0])
        with pytest.raises(RuntimeError, match="not at the same device"):
            ours(x.cpu())


# --- transforms on the fast path ------------------------------------------------------------


def test_vmap_and_compile_run_the_reference_under_auto():
    torch.manual_seed(15)
    model = randomised(LSTM(3, 2, variant="V", backend="auto"))
    x = torch.randn(2, 4, 1, 3)
    batched = torch.func.vmap(lambda xi: model(xi)[0])(x)
    close(batched, torch.stack([model(xi)[0] for xi in x]))
    grads = torch.func.grad(lambda xi: model(xi)[0].sum())(x[0])
    xs = x[0].clone().requires_grad_()
    model(xs)[0].sum().backward()
    close(grads, xs.grad)
    compiled = torch.compile(lambda xi: model(xi)[0], fullgraph=True, dynamic=False)
    close(compiled(x[0]), model(x[0])[0])


def test_fast_under_a_transform_is_a_clear_error():
    model = LSTM(3, 2, backend="fast")
    with pytest.raises(ValueError, match="torch.func transforms"):
        torch.func.vmap(lambda xi: model(xi)[0])(torch.randn(2, 4, 1, 3))
