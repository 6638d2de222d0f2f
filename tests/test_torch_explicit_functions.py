"""Lesson 05's explicit-backward Functions against independent oracles.

Each Function is checked two ways: `torch.autograd.gradcheck` in float64 (its backward against
finite differences of its own forward), and its forward output and backward gradients against
PyTorch autograd through PyTorch's built-in layers (F.layer_norm, F.gelu, F.embedding,
F.scaled_dot_product_attention, F.cross_entropy), in float64 and float32. Then what each Function
keeps for its backward, and the gradients it skips, which are the lesson's point.
"""
import pytest
import torch
import torch.nn.functional as F

LESSON = "05_torch_explicit_backward"  # the notebook `nb` (tests/conftest.py) loads


def randn(seed, *shape, dtype=torch.float64, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype).requires_grad_(True)


def tokens(seed, high, shape):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def sdpa_oracle(qkv, n_head):
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in qkv.split(C, dim=2))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return y.transpose(1, 2).reshape(B, T, C)


# (Function name, inputs(dtype) -> tuple, oracle(*inputs) -> output built from PyTorch's own layers)
CASES = {
    "gelu": ("GeluFunction",
             lambda dt: (randn(1, 3, 5, 8, dtype=dt, scale=2.0),),
             lambda x: F.gelu(x, approximate="tanh")),
    "layernorm": ("LayerNormFunction",  # weight kept away from 0: the backward divides by it
                  lambda dt: (randn(2, 3, 5, 8, dtype=dt, scale=2.0, shift=3.0),
                              randn(3, 8, dtype=dt, scale=0.3, shift=1.0),
                              randn(4, 8, dtype=dt)),
                  lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)),
    "linear": ("LinearFunction",
               lambda dt: (randn(5, 3, 5, 8, dtype=dt), randn(6, 8, 12, dtype=dt), randn(7, 12, dtype=dt)),
               lambda x, w, b: F.linear(x, w.T, b)),
    "linear_nobias": ("LinearFunction",
                      lambda dt: (randn(8, 3, 5, 8, dtype=dt), randn(9, 8, 12, dtype=dt), None),
                      lambda x, w, b: F.linear(x, w.T)),
    "encoder": ("EncoderFunction",
                lambda dt: (tokens(10, 7, (3, 5)), randn(11, 7, 4, dtype=dt), randn(12, 6, 4, dtype=dt)),
                lambda idx, wte, wpe: F.embedding(idx, wte) + wpe[: idx.shape[1]]),
    "attention_1head": ("AttentionFunction", lambda dt: (randn(13, 2, 6, 3 * 8, dtype=dt), 1), sdpa_oracle),
    "attention_4heads": ("AttentionFunction", lambda dt: (randn(14, 2, 6, 3 * 8, dtype=dt), 4), sdpa_oracle),
    "recompute_1head": ("AttentionRecomputeFunction", lambda dt: (randn(22, 2, 6, 24, dtype=dt), 1), sdpa_oracle),
    "recompute_4heads": ("AttentionRecomputeFunction", lambda dt: (randn(23, 2, 6, 24, dtype=dt), 4), sdpa_oracle),
    "crossentropy": ("SoftmaxCrossEntropyFunction",
                     lambda dt: (randn(15, 3, 4, 11, dtype=dt, scale=3.0), tokens(16, 11, (3, 4))),
                     lambda logits, targets: F.cross_entropy(logits.flatten(0, 1), targets.flatten())),
    "gelu_linear": ("GeluLinearFunction",
                    lambda dt: (randn(17, 3, 5, 8, dtype=dt, scale=2.0), randn(18, 8, 6, dtype=dt),
                                randn(19, 6, dtype=dt)),
                    lambda pre, w, b: F.gelu(pre, approximate="tanh") @ w + b),
}


def differentiable(inputs):
    return [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]


@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck_float64(nb, case):
    name, make_inputs, _ = CASES[case]
    inputs = make_inputs(torch.float64)
    assert torch.autograd.gradcheck(getattr(nb, name).apply, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


# float64 agrees to rounding; float32 to the rounding of different summation orders
TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_pytorch_layers(nb, case, dtype):
    name, make_inputs, oracle = CASES[case]
    inputs = make_inputs(dtype)
    out = getattr(nb, name).apply(*inputs)
    expected = oracle(*inputs)
    torch.testing.assert_close(out, expected, **TOLERANCES[dtype])
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(99), dtype=torch.float64).to(dtype)
    leaves = differentiable(inputs)
    grads = torch.autograd.grad(out, leaves, dout)
    expected_grads = torch.autograd.grad(expected, leaves, dout)
    for leaf_number, (g, e) in enumerate(zip(grads, expected_grads)):
        torch.testing.assert_close(g, e, **TOLERANCES[dtype], msg=lambda m: f"input {leaf_number}: {m}")


def saved_storages(out):
    return [None if t is None else t.untyped_storage().data_ptr() for t in out.grad_fn.saved_tensors]


def storage(t):
    return t.untyped_storage().data_ptr()


def test_linear_returns_only_the_gradients_needed_and_a_frozen_weight_keeps_no_input(nb):
    x, w, b = randn(30, 2, 3, 4), randn(31, 4, 5), randn(32, 5)
    dout = torch.ones(2, 3, 5, dtype=torch.float64)
    frozen = nb.LinearFunction.apply(x, w.detach(), b)
    dx, dw, db = frozen.grad_fn.apply(dout)  # the Function's own backward, with this node's ctx
    assert dw is None and dx is not None and db is not None
    torch.testing.assert_close(dx, dout @ w.detach().T, rtol=1e-12, atol=0)
    assert storage(x) not in saved_storages(frozen)
    assert nb.LinearFunction.apply(x.detach(), w, None).grad_fn.apply(dout)[0::2] == (None, None)


def test_layernorm_keeps_its_output_not_its_input(nb):
    x, w, b = randn(33, 2, 3, 8, shift=1.0), randn(34, 8, scale=0.3, shift=1.0), randn(35, 8)
    out = nb.LayerNormFunction.apply(x, w, b)
    kept = saved_storages(out)
    assert storage(out) in kept and storage(x) not in kept
    assert sorted(tuple(t.shape) for t in out.grad_fn.saved_tensors) == sorted([(2, 3, 8), (8,), (8,), (2, 3)])


@pytest.mark.parametrize("name, keeps_att", [("AttentionFunction", True), ("AttentionRecomputeFunction", False)])
def test_only_the_stored_attention_keeps_a_t_by_t_tensor(nb, name, keeps_att):
    qkv = randn(36, 1, 7, 3 * 4)
    shapes = [tuple(t.shape) for t in getattr(nb, name).apply(qkv, 2).grad_fn.saved_tensors]
    assert ((1, 2, 7, 7) in shapes) == keeps_att and (1, 7, 12) in shapes


def test_gelu_linear_keeps_the_pre_activation_only(nb):
    pre, w, b = randn(37, 2, 3, 6), randn(38, 6, 4), randn(39, 4)
    out = nb.GeluLinearFunction.apply(pre, w, b)
    activations = [s for s in saved_storages(out) if s not in (storage(w), storage(b))]
    assert activations == [storage(pre)]


def test_attention_is_causal(nb):
    """Changing the last token must not change the outputs at earlier positions."""
    qkv = randn(20, 1, 5, 3 * 8).detach()
    changed = qkv.clone()
    changed[:, -1] += 1.0
    out, out_changed = (nb.AttentionRecomputeFunction.apply(t, 2) for t in (qkv, changed))
    torch.testing.assert_close(out[:, :-1], out_changed[:, :-1], rtol=0, atol=0)
    assert (out[:, -1] - out_changed[:, -1]).abs().max() > 1e-3


def test_encoder_sums_repeated_tokens(nb):
    idx = torch.tensor([[2, 2, 2]])
    wte = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    wpe = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    nb.EncoderFunction.apply(idx, wte, wpe).sum().backward()
    torch.testing.assert_close(wte.grad[2], torch.full((3,), 3.0, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(wte.grad[[0, 1, 3]], torch.zeros(3, 3, dtype=torch.float64), rtol=0, atol=0)


def test_crossentropy_survives_huge_logits(nb):
    logits = torch.tensor([[[1000.0, 0.0, -1000.0]]], dtype=torch.float64)
    loss = nb.SoftmaxCrossEntropyFunction.apply(logits, torch.tensor([[1]]))
    torch.testing.assert_close(loss, torch.tensor(1000.0, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("call", ["encoder_too_long", "attention_bad_heads", "target_too_big", "target_negative"])
def test_bad_inputs_raise_value_error(nb, call):
    x = randn(21, 1, 4, 12).detach()
    calls = {
        "encoder_too_long": lambda: nb.EncoderFunction.apply(torch.zeros(1, 5, dtype=torch.int64), x[0], x[0, :3]),
        "attention_bad_heads": lambda: nb.AttentionRecomputeFunction.apply(x, 3),
        "target_too_big": lambda: nb.SoftmaxCrossEntropyFunction.apply(x, torch.full((1, 4), 12)),
        "target_negative": lambda: nb.SoftmaxCrossEntropyFunction.apply(x, torch.full((1, 4), -1)),
    }
    with pytest.raises(ValueError):
        calls[call]()
