"""Lesson 02's numpy GPT-2 forward against PyTorch: each layer, the whole model, sampling."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.probes.gpt2_forward import normal

LESSON = "02_gpt2_numpy_forward"  # the notebook `nb` (tests/conftest.py) loads

SMALL = GPT2Config(block_size=16, vocab_size=96, n_layer=2, n_head=4, n_embd=32)


def assert_close(ours, expected, rtol, atol):
    ours, expected = np.asarray(ours), np.asarray(expected)
    assert ours.shape == expected.shape
    diff = np.abs(ours - expected)
    assert np.all(diff <= atol + rtol * np.abs(expected)), (
        f"max abs diff {diff.max():.3e}; ours {ours.ravel()[:4]} vs reference {expected.ravel()[:4]}")


def t(a):
    return torch.from_numpy(np.asarray(a))


# --- one layer at a time, float64, against the torch ops that do the same -------------------

def test_encoder(nb):
    idx = np.random.default_rng(0).integers(0, 20, (3, 7))
    wte, wpe = normal(1, (20, 8)), normal(2, (10, 8))
    out, _ = nb.encoder_forward(idx, wte, wpe)
    expected = F.embedding(t(idx), t(wte)) + t(wpe)[:7]
    assert_close(out, expected.numpy(), rtol=0, atol=0)


def test_layernorm(nb):
    x, w, b = normal(3, (2, 5, 16), 3.0) + 2.0, normal(4, (16,)), normal(5, (16,))
    out, _ = nb.layernorm_forward(x, w, b)
    assert_close(out, F.layer_norm(t(x), (16,), t(w), t(b), eps=1e-5).numpy(), rtol=1e-12, atol=1e-12)


def test_matmul(nb):
    x, w, b = normal(6, (2, 5, 8)), normal(7, (8, 12)), normal(8, (12,))
    out, _ = nb.matmul_forward(x, w, b)
    assert_close(out, F.linear(t(x), t(w).T, t(b)).numpy(), rtol=1e-12, atol=1e-12)


def test_gelu(nb):
    x = normal(9, (4, 50), 3.0)
    out, _ = nb.gelu_forward(x)
    assert_close(out, F.gelu(t(x), approximate="tanh").numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 300.0], ids=["unit", "large"])
def test_softmax(nb, scale):
    x = normal(10, (3, 4, 9), scale)
    probs, _ = nb.softmax_forward(x)
    assert_close(probs, torch.softmax(t(x), dim=-1).numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("impl", ["loop", "vectorized"])
def test_attention(nb, impl):
    B, T, NH, HS = 2, 7, 3, 4
    qkv = normal(11, (B, T, 3 * NH * HS))
    out = nb.attention_forward_loop(qkv, NH) if impl == "loop" else nb.attention_forward(qkv, NH)[0]
    q, k, v = (a.reshape(B, T, NH, HS).transpose(1, 2) for a in t(qkv).split(NH * HS, dim=-1))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, NH * HS)
    assert_close(out, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_crossentropy(nb):
    logits, targets = normal(12, (2, 5, 11), 2.0), np.random.default_rng(13).integers(0, 11, (2, 5))
    probs = torch.softmax(t(logits), dim=-1).numpy()
    losses, _ = nb.crossentropy_forward(probs, targets)
    expected = F.cross_entropy(t(logits).reshape(10, 11), t(targets).reshape(10), reduction="none").reshape(2, 5)
    assert_close(losses, expected.numpy(), rtol=1e-12, atol=1e-12)


# --- the whole model against the reference PyTorch GPT-2 ------------------------------------

def perturbed_reference(config, seed):
    """The reference GPT-2 with every parameter moved off its init (layernorms not (1, 0), biases nonzero)."""
    model = GPT2(config, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model


def compare_logits(nb, model, config, idx, dtype, rtol, atol):
    model = model.to(dtype)
    params = {name: p.detach().numpy() for name, p in model.named_parameters()}
    ours = nb.gpt2_forward(params, idx, config)
    expected = model(torch.from_numpy(idx)).detach().numpy()
    assert ours.dtype == params["wte.weight"].dtype
    assert_close(ours, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)], ids=["float32", "float64"])
def test_logits_random_config(nb, dtype, tol):
    idx = np.random.default_rng(14).integers(0, SMALL.vocab_size, (3, SMALL.block_size))
    compare_logits(nb, perturbed_reference(SMALL, seed=15), SMALL, idx, dtype, rtol=tol, atol=tol)


def test_logits_tiny_checkpoint(nb, tmp_path):
    from llmc_core.weights import load_params_numpy, write_tiny_checkpoint
    config = GPT2Config.preset("tiny")
    path = tmp_path / "tiny.bin"
    write_tiny_checkpoint(path, config, seed=16)
    params = load_params_numpy(path)
    model = GPT2(config)
    model.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(p)) for name, p in params.items()}, strict=False)
    for name, p in model.named_parameters():  # every parameter came from the checkpoint
        assert np.array_equal(p.detach().numpy(), params[name]), name
    idx = np.random.default_rng(17).integers(0, config.vocab_size, (2, config.block_size))
    ours = nb.gpt2_forward(params, idx, config)
    expected = model(torch.from_numpy(idx)).detach().numpy()
    assert ours.dtype == np.float32
    assert_close(ours, expected, rtol=1e-4, atol=1e-4)


# --- sampling --------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.7, 5), (1.5, 1)], ids=["plain", "t0.7-k5", "t1.5-k1"])
def test_sampling_probs(nb, temperature, top_k):
    logits = normal(18, (40,), 2.0)
    scaled = torch.from_numpy(logits) / temperature
    if top_k is not None:
        kth = torch.topk(scaled, top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    assert_close(nb.sampling_probs(logits, temperature, top_k), torch.softmax(scaled, 0).numpy(),
                 rtol=1e-12, atol=1e-15)


def test_sample_frequencies(nb):
    logits = normal(19, (6,))
    rng = np.random.default_rng(20)
    draws = [nb.sample(logits, rng, 1.0, 4) for _ in range(20_000)]
    frequencies = np.bincount(draws, minlength=6) / len(draws)
    # 20,000 draws: the standard error of a frequency is at most 0.0035; 0.015 is over 4 of them
    assert_close(frequencies, nb.sampling_probs(logits, 1.0, 4), rtol=0, atol=0.015)


def test_sample_is_inverse_cdf(nb):
    logits = normal(21, (8,))
    probs = nb.sampling_probs(logits)
    for seed in range(20):
        u = np.random.default_rng(seed).random()
        expected = next(i for i, c in enumerate(np.cumsum(probs)) if c > u)
        assert nb.sample(logits, np.random.default_rng(seed)) == expected


# --- any shape (hypothesis) ------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 9), NH=st.integers(1, 3), HS=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_attention_any_shape(nb, B, T, NH, HS, seed):
    qkv = normal(seed, (B, T, 3 * NH * HS), 2.0)
    out, (q, k, v, att) = nb.attention_forward(qkv, NH)
    tq, tk, tv = (a.reshape(B, T, NH, HS).transpose(1, 2) for a in t(qkv).split(NH * HS, dim=-1))
    expected = F.scaled_dot_product_attention(tq, tk, tv, is_causal=True).transpose(1, 2).reshape(B, T, NH * HS)
    assert_close(out, expected.numpy(), rtol=1e-10, atol=1e-12)
    assert att.shape == (B, NH, T, T) and q.shape == (B, NH, T, HS)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 6), C=st.integers(2, 40), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_layernorm_any_shape_and_scale(nb, rows, C, scale, seed):
    x, w, b = normal(seed, (1, rows, C), scale), normal(seed + 1, (C,)), normal(seed + 2, (C,))
    out, _ = nb.layernorm_forward(x, w, b)
    assert_close(out, F.layer_norm(t(x), (C,), t(w), t(b), eps=1e-5).numpy(), rtol=1e-9, atol=1e-9)
