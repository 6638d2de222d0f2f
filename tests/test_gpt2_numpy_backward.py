"""Lesson 03's numpy GPT-2 backward, AdamW and training against PyTorch autograd and finite differences."""
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.probes.gpt2_forward import normal

LESSON = "03_gpt2_numpy_backward"  # the notebook `nb` (tests/conftest.py) loads

SMALL = GPT2Config(block_size=8, vocab_size=40, n_layer=2, n_head=2, n_embd=16)


def assert_close(ours, expected, rtol, atol, name=""):
    ours, expected = np.asarray(ours), np.asarray(expected)
    assert ours.shape == expected.shape, name
    diff = np.abs(ours - expected)
    assert np.all(diff <= atol + rtol * np.abs(expected)), (
        f"{name}: max abs diff {diff.max():.3e}; ours {ours.ravel()[:4]} vs reference {expected.ravel()[:4]}")


def numerical_grad(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


# --- each layer: forward, its backward, and the same function in torch ------------------------
# A case is (inputs, forward(nb, *inputs) -> (out, cache), backward name, torch function of the inputs).

IDX = np.array([[1, 3, 1, 0], [3, 3, 2, 1]])  # repeated ids: the trap of dwte[idx] += dout
TARGETS = np.array([[4, 0, 2], [1, 1, 3]])


def torch_attention(qkv, NH=2):
    B, T, C3 = qkv.shape
    q, k, v = (a.reshape(B, T, NH, C3 // 3 // NH).transpose(1, 2) for a in qkv.split(C3 // 3, dim=-1))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C3 // 3)


def ce_forward(nb, logits):
    probs, _ = nb.softmax_forward(logits)
    return nb.crossentropy_forward(probs, TARGETS)


CASES = {
    "encoder": (lambda: [normal(1, (5, 3)), normal(2, (6, 3))],
                lambda nb, wte, wpe: nb.encoder_forward(IDX, wte, wpe), "encoder_backward",
                lambda wte, wpe: F.embedding(torch.from_numpy(IDX), wte) + wpe[:4]),
    "layernorm": (lambda: [normal(3, (2, 3, 6), 2.0, 1.0), normal(4, (6,), 0.5, 1.0), normal(5, (6,))],
                  lambda nb, x, w, b: nb.layernorm_forward(x, w, b), "layernorm_backward",
                  lambda x, w, b: F.layer_norm(x, (6,), w, b, eps=1e-5)),
    "matmul": (lambda: [normal(6, (2, 3, 4)), normal(7, (4, 5)), normal(8, (5,))],
               lambda nb, x, w, b: nb.matmul_forward(x, w, b), "matmul_backward",
               lambda x, w, b: x @ w + b),
    "gelu": (lambda: [normal(9, (3, 7), 2.0)],
             lambda nb, x: nb.gelu_forward(x), "gelu_backward",
             lambda x: F.gelu(x, approximate="tanh")),
    "residual": (lambda: [normal(10, (2, 3, 4)), normal(11, (2, 3, 4))],
                 lambda nb, x, y: nb.residual_forward(x, y), "residual_backward",
                 lambda x, y: x + y),
    "softmax": (lambda: [normal(12, (2, 3, 5), 2.0)],
                lambda nb, x: nb.softmax_forward(x), "softmax_backward",
                lambda x: torch.softmax(x, dim=-1)),
    "attention": (lambda: [normal(13, (2, 5, 3 * 8))],
                  lambda nb, qkv: nb.attention_forward(qkv, 2), "attention_backward",
                  torch_attention),
    "crossentropy_softmax": (lambda: [normal(14, (2, 3, 6), 2.0)],
                             ce_forward, "crossentropy_softmax_backward",
                             lambda logits: F.cross_entropy(logits.reshape(6, 6), torch.from_numpy(TARGETS).reshape(6),
                                                            reduction="none").reshape(2, 3)),
}


def run_backward(nb, name):
    make_inputs, forward, backward, _ = CASES[name]
    inputs = make_inputs()
    out, cache = forward(nb, *inputs)
    dout = normal(100, out.shape)
    grads = getattr(nb, backward)(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    return inputs, dout, grads


@pytest.mark.parametrize("name", list(CASES))
def test_layer_backward_vs_autograd(nb, name):
    inputs, dout, grads = run_backward(nb, name)
    leaves = [torch.tensor(x, requires_grad=True) for x in inputs]
    (CASES[name][3](*leaves) * torch.from_numpy(dout)).sum().backward()
    assert len(grads) == len(leaves)
    for i, (ours, leaf) in enumerate(zip(grads, leaves)):
        assert_close(ours, leaf.grad.numpy(), rtol=1e-10, atol=1e-12, name=f"{name} input {i}")


@pytest.mark.parametrize("name", list(CASES))
def test_layer_backward_vs_finite_differences(nb, name):
    inputs, dout, grads = run_backward(nb, name)
    loss = lambda: (CASES[name][1](nb, *inputs)[0] * dout).sum()
    for i, (ours, x) in enumerate(zip(grads, inputs)):
        # central differences in float64 with h=1e-6: error about h^2 * f''' + 1e-16 / h, ~1e-9 here
        assert_close(ours, numerical_grad(loss, x), rtol=1e-6, atol=1e-7, name=f"{name} input {i}")


# --- the derivation steps, each against autograd on its own small function ------------------

def vjp(function, x, dout):
    """dL/dx for L = (function(x) * dout).sum(), by torch autograd in float64."""
    leaf = torch.tensor(x, requires_grad=True)
    (function(leaf) * torch.from_numpy(dout)).sum().backward()
    return leaf.grad.numpy()


def test_layernorm_mean_backward_vs_autograd(nb):
    dxc = normal(30, (2, 3, 6))
    expected = vjp(lambda x: x - x.mean(dim=-1, keepdim=True), normal(31, (2, 3, 6)), dxc)
    assert_close(nb.layernorm_mean_backward(dxc), expected, rtol=1e-12, atol=1e-14)


def test_layernorm_variance_backward_vs_autograd(nb):
    xc, dxhat = normal(32, (2, 3, 6), 2.0), normal(33, (2, 3, 6))
    rstd = 1.0 / np.sqrt((xc**2).mean(axis=-1, keepdims=True) + 1e-5)
    expected = vjp(lambda xc: xc / torch.sqrt((xc**2).mean(dim=-1, keepdim=True) + 1e-5), xc, dxhat)
    assert_close(nb.layernorm_variance_backward(dxhat, xc * rstd, rstd), expected, rtol=1e-10, atol=1e-12)


def test_layernorm_steps_compose_to_torch_layer_norm(nb):
    x, dx = normal(34, (3, 7), 3.0, 1.0), normal(35, (3, 7))
    _, (xhat, _, rstd) = nb.layernorm_forward(x, np.ones(7), np.zeros(7))
    expected = vjp(lambda x: F.layer_norm(x, (7,), eps=1e-5), x, dx)
    ours = nb.layernorm_mean_backward(nb.layernorm_variance_backward(dx, xhat, rstd))
    assert_close(ours, expected, rtol=1e-10, atol=1e-12)


def test_gelu_derivative_vs_autograd(nb):
    x = np.linspace(-8.0, 8.0, 161)
    leaf = torch.tensor(x, requires_grad=True)
    F.gelu(leaf, approximate="tanh").sum().backward()  # elementwise: the gradient of the sum is the derivative
    assert_close(nb.gelu_derivative(x), leaf.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_softmax_jacobian_vs_autograd(nb):
    scores = normal(36, (6,), 2.0)
    expected = torch.autograd.functional.jacobian(lambda x: torch.softmax(x, dim=-1), torch.from_numpy(scores)).numpy()
    probs, _ = nb.softmax_forward(scores)
    assert_close(nb.softmax_jacobian(probs), expected, rtol=1e-12, atol=1e-15)


def test_attention_head_backward_vs_autograd(nb):
    q, k, v, dout = (normal(37 + i, (2, 3, 5, 4)) for i in range(4))  # (B, NH, T, HS)
    leaves = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    (F.scaled_dot_product_attention(*leaves, is_causal=True) * torch.from_numpy(dout)).sum().backward()
    scores = np.where(np.tril(np.ones((5, 5), dtype=bool)), q @ k.swapaxes(-1, -2) / 2.0, -np.inf)
    att, _ = nb.softmax_forward(scores)
    for name, ours, leaf in zip("qkv", nb.attention_head_backward(dout, q, k, v, att), leaves):
        assert_close(ours, leaf.grad.numpy(), rtol=1e-10, atol=1e-12, name=f"d{name}")


@pytest.mark.parametrize("target", [0, 3, 6])
def test_crossentropy_row_grad_vs_autograd(nb, target):
    logits = normal(41 + target, (7,), 3.0)
    leaf = torch.tensor(logits, requires_grad=True)
    F.cross_entropy(leaf[None], torch.tensor([target])).backward()
    before = logits.copy()
    assert_close(nb.crossentropy_row_grad(logits, target), leaf.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert np.array_equal(logits, before)


# --- the whole model -------------------------------------------------------------------------

def perturbed_reference(config, seed, dtype=torch.float64):
    """The reference GPT-2 with every parameter moved off its init (layernorms not (1, 0), biases nonzero)."""
    model = GPT2(config, seed=seed).to(dtype)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator, dtype=dtype))
    return model


def numpy_params(model):
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


@pytest.fixture(scope="module")
def model_case(nb):
    model = perturbed_reference(SMALL, seed=20)
    rng = np.random.default_rng(21)
    idx, targets = rng.integers(0, SMALL.vocab_size, (2, 3, SMALL.block_size))
    _, loss = model(torch.from_numpy(idx), torch.from_numpy(targets))
    loss.backward()
    params = numpy_params(model)
    return model, params, idx, targets, loss.item(), nb.gpt2_loss_and_grads(params, idx, targets, SMALL)


def test_model_loss_vs_torch(model_case):
    _, _, _, _, torch_loss, (loss, _) = model_case
    assert abs(loss - torch_loss) <= 1e-12 * abs(torch_loss)


@pytest.mark.parametrize("name", [name for name, _ in GPT2(SMALL).named_parameters()])
def test_model_grads_vs_autograd(model_case, name):
    model, _, _, _, _, (_, grads) = model_case
    expected = dict(model.named_parameters())[name].grad.numpy()
    relative = np.abs(grads[name] - expected).max() / np.abs(expected).max()
    assert grads[name].dtype == np.float64
    assert relative <= 1e-5, f"{name}: relative difference {relative:.3e}"


@pytest.mark.parametrize("name", ["wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.1.ln_2.weight", "ln_f.bias"])
def test_model_grads_vs_finite_differences(nb, model_case, name):
    _, params, idx, targets, _, (_, grads) = model_case
    corner = params[name][:3] if params[name].ndim == 1 else params[name][:2, :3]  # a view: nudges the real weights
    numerical = numerical_grad(lambda: nb.gpt2_loss_and_grads(params, idx, targets, SMALL)[0], corner)
    ours = grads[name][:3] if grads[name].ndim == 1 else grads[name][:2, :3]
    assert_close(ours, numerical, rtol=1e-6, atol=1e-8, name=name)


def test_model_grads_float32(nb):
    model = perturbed_reference(SMALL, seed=22, dtype=torch.float32)
    rng = np.random.default_rng(23)
    idx, targets = rng.integers(0, SMALL.vocab_size, (2, 2, SMALL.block_size))
    loss, grads = nb.gpt2_loss_and_grads(numpy_params(model), idx, targets, SMALL)
    _, torch_loss = model(torch.from_numpy(idx), torch.from_numpy(targets))
    torch_loss.backward()
    assert abs(loss - torch_loss.item()) <= 1e-5 * torch_loss.item()
    for name, p in model.named_parameters():
        assert grads[name].dtype == np.float32, name
        relative = np.abs(grads[name] - p.grad.numpy()).max() / np.abs(p.grad.numpy()).max()
        assert relative <= 1e-4, f"{name}: relative difference {relative:.3e}"  # float32 rounding


def test_model_grads_accumulate(nb, model_case):
    _, params, idx, targets, _, (_, grads) = model_case
    buffer = {name: g.copy() for name, g in grads.items()}
    _, returned = nb.gpt2_loss_and_grads(params, idx, targets, SMALL, buffer)
    assert returned is buffer
    for name in grads:
        assert_close(buffer[name], 2 * grads[name], rtol=1e-12, atol=1e-15, name=name)


# --- AdamW, flat buffers, training -----------------------------------------------------------

@pytest.mark.parametrize("weight_decay", [0.0, 0.1], ids=["no-wd", "wd"])
def test_adamw_vs_torch(nb, weight_decay):
    param, m, v = normal(30, (4, 5)), np.zeros((4, 5)), np.zeros((4, 5))
    leaf = torch.tensor(param.copy(), requires_grad=True)
    opt = torch.optim.AdamW([leaf], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=weight_decay)
    for step in range(1, 6):
        grad = normal(30 + step, (4, 5))
        nb.adamw_update(param, grad, m, v, step, 0.01, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=weight_decay)
        leaf.grad = torch.from_numpy(grad)
        opt.step()
    assert_close(param, leaf.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_flat_buffer_views(nb):
    shapes = {"a": (3, 4), "b": (5,), "c": (2, 1, 3)}
    flat, views = nb.flat_buffer(shapes)
    assert flat.dtype == np.float32 and flat.shape == (12 + 5 + 6,)
    assert [v.shape for v in views.values()] == list(shapes.values())
    for i, v in enumerate(views.values()):
        v[...] = i + 1
    assert np.array_equal(flat, np.repeat([1.0, 2.0, 3.0], [12, 5, 6]))


def test_training_matches_torch(nb):
    """Five AdamW steps of the numpy trainer and of torch.optim.AdamW on the reference model, float32."""
    config = GPT2Config.preset("tiny")
    model = GPT2(config, seed=40)
    state = nb.training_state(numpy_params(model))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    rng = np.random.default_rng(41)
    for _ in range(5):
        x, y = rng.integers(0, config.vocab_size, (2, 4, 16))
        ours = nb.train_step(state, x, y, config, lr=1e-2, weight_decay=0.1)
        opt.zero_grad()
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        opt.step()
        assert abs(ours - loss.item()) <= 1e-4 * loss.item()
    for name, p in model.named_parameters():
        assert_close(state["params"][name], p.detach().numpy(), rtol=1e-3, atol=1e-4, name=name)


def numpy_bytes():
    """Bytes of array data numpy holds now (numpy reports its data buffers to tracemalloc in its own domain)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_training_memory_is_flat(nb):
    config = GPT2Config(block_size=16, vocab_size=512, n_layer=2, n_head=2, n_embd=32)
    state = nb.training_state(numpy_params(GPT2(config, seed=42)))
    rng = np.random.default_rng(43)
    tracemalloc.start()
    try:
        for step in range(1, 51):
            x, y = rng.integers(0, config.vocab_size, (2, 4, 16))
            nb.train_step(state, x, y, config, lr=1e-3)
            if step == 2:
                arrays_2, total_2 = numpy_bytes(), tracemalloc.get_traced_memory()[0]
        arrays_50, total_50 = numpy_bytes(), tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert arrays_50 == arrays_2, (arrays_2, arrays_50)  # not one array survives a step
    # Python's own small objects (free lists) may grow by a few kB; one leaked logits array would be 64 kB
    assert abs(total_50 - total_2) <= 16_000, (total_2, total_50)


# --- the library view of the two solution notebooks ------------------------------------------

def test_numpy_gpt2_exports_every_name():
    from llmc_core import numpy_gpt2
    missing = [name for name in numpy_gpt2.__all__ if not callable(getattr(numpy_gpt2, name)) and name != "GELU_SCALE"]
    assert missing == []
    with pytest.raises(AttributeError):
        numpy_gpt2.no_such_layer


# --- any shape (hypothesis) ------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 7), NH=st.integers(1, 3), HS=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_attention_backward_any_shape(nb, B, T, NH, HS, seed):
    qkv, dout = normal(seed, (B, T, 3 * NH * HS)), normal(seed + 1, (B, T, NH * HS))
    _, cache = nb.attention_forward(qkv, NH)
    leaf = torch.tensor(qkv, requires_grad=True)
    (torch_attention(leaf, NH) * torch.from_numpy(dout)).sum().backward()
    assert_close(nb.attention_backward(dout, cache), leaf.grad.numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 6), C=st.integers(2, 24), seed=st.integers(0, 2**16))
def test_layernorm_backward_any_shape(nb, rows, C, seed):
    x, w, b = normal(seed, (2, rows, C), 3.0), normal(seed + 1, (C,)), normal(seed + 2, (C,))
    dout = normal(seed + 3, (2, rows, C))
    _, cache = nb.layernorm_forward(x, w, b)
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    (F.layer_norm(leaves[0], (C,), leaves[1], leaves[2], eps=1e-5) * torch.from_numpy(dout)).sum().backward()
    for ours, leaf in zip(nb.layernorm_backward(dout, cache), leaves):
        assert_close(ours, leaf.grad.numpy(), rtol=1e-8, atol=1e-10)
