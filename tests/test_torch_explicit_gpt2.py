"""Lesson 05's ExplicitGPT2 against the reference autograd GPT-2 (llmc_core.gpt2.GPT2).

Both models get the reference's state dict; logits, loss and the gradient of every parameter
must agree: within 1e-5 relative in float64 (the actual gap is rounding, ~1e-15), and within
the float32 tolerance stated at the comparison.
"""
import pytest
import torch

from llmc_core.gpt2 import GPT2, GPT2Config

CONFIG = GPT2Config(block_size=16, vocab_size=40, n_layer=2, n_head=4, n_embd=16)
TOLERANCES = {
    torch.float64: dict(rtol=1e-5, atol=1e-12),
    # float32: the two models sum in different orders; measured gaps are ~5e-7 of each tensor's largest entry
    torch.float32: dict(rtol=1e-4, atol=1e-6),
}


LESSON = "05_torch_explicit_backward"  # the notebook `nb` (tests/conftest.py) loads


def random_reference(seed, dtype, attention="manual"):
    """The reference GPT-2 with every parameter random (layernorms and biases too): no gradient hides behind 0 or 1."""
    model = GPT2(CONFIG, attention=attention, seed=seed).to(dtype)
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype) * 0.1)
    return model


def batch(seed, B=3, T=12):
    idx = torch.randint(0, CONFIG.vocab_size, (2, B, T), generator=torch.Generator().manual_seed(seed))
    return idx[0], idx[1]


def run(model, idx, targets):
    logits, loss = model(idx, targets)
    loss.backward()
    return logits.detach(), loss.detach(), {name: p.grad for name, p in model.named_parameters()}


RECOMPUTE = {"stored": {}, "recomputed_gelu": {"recompute_gelu": True},
             "recomputed_attention": {"recompute_attention": True}}


@pytest.mark.parametrize("recompute", list(RECOMPUTE))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_logits_loss_and_every_gradient_match_reference(nb, dtype, recompute):
    reference = random_reference(1, dtype)
    model = nb.ExplicitGPT2(CONFIG, **RECOMPUTE[recompute]).to(dtype)
    model.load_state_dict(reference.state_dict())
    idx, targets = batch(2)
    logits, loss, grads = run(model, idx, targets)
    ref_logits, ref_loss, ref_grads = run(reference, idx, targets)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(logits, ref_logits, **tol)
    torch.testing.assert_close(loss, ref_loss, **tol)
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], **tol, msg=lambda m: f"d{name}: {m}")


def test_matches_reference_with_fused_attention(nb):
    """The reference's sdpa attention is a second, independent path to the same numbers."""
    reference = random_reference(3, torch.float64, attention="sdpa")
    model = nb.ExplicitGPT2(CONFIG).double()
    model.load_state_dict(reference.state_dict())
    idx, targets = batch(4, T=CONFIG.block_size)
    logits, loss, grads = run(model, idx, targets)
    ref_logits, ref_loss, ref_grads = run(reference, idx, targets)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-12)
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-5, atol=1e-12, msg=lambda m: f"d{name}: {m}")


def test_state_dict_names_and_shapes_are_the_reference_ones(nb):
    model, reference = nb.ExplicitGPT2(CONFIG), GPT2(CONFIG)
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in (model, reference)]
    assert shapes[0] == shapes[1]


def test_same_seed_gives_the_reference_init(nb):
    model, reference = nb.ExplicitGPT2(CONFIG, seed=5), GPT2(CONFIG, seed=5)
    for (name, p), r in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(p, r, rtol=0, atol=0, msg=lambda m: f"{name}: {m}")


def test_without_targets_returns_logits_only(nb):
    model = nb.ExplicitGPT2(CONFIG)
    idx, _ = batch(5)
    logits = model(idx)
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 12, CONFIG.vocab_size)


def test_training_steps_follow_the_reference(nb):
    """Three AdamW steps: the parameters stay together, so every gradient on the way was right."""
    reference = random_reference(6, torch.float64)
    model = nb.ExplicitGPT2(CONFIG).double()
    model.load_state_dict(reference.state_dict())
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2) for m in (model, reference)]
    for step in range(3):
        idx, targets = batch(10 + step)
        for m, opt in zip((model, reference), optimizers):
            opt.zero_grad()
            m(idx, targets)[1].backward()
            opt.step()
    for (name, p), r in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, r, rtol=1e-9, atol=1e-12, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("bad", ["too_long", "not_a_config"])
def test_user_errors(nb, bad):
    if bad == "too_long":
        with pytest.raises(ValueError, match="wpe"):
            nb.ExplicitGPT2(CONFIG)(torch.zeros(1, CONFIG.block_size + 1, dtype=torch.int64))
    else:
        with pytest.raises(TypeError, match="GPT2Config"):
            nb.ExplicitGPT2({"n_layer": 2})
