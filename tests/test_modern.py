"""The modern recipe's pieces (the library's and lesson 09's solution) against independent references,
and GPT with every option off against GPT2.

References: torch.nn.functional.rms_norm; RoPE as complex multiplication by e^(i t theta);
the SVD (Newton-Schulz keeps the singular vectors; the cubic iteration's fixed point is U V^T);
torch.optim.AdamW for the AdamW groups; autograd for the gradients of the pieces.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from llmc_core import modern
from llmc_core.gpt2 import GPT2, GPT2Config

CONFIG = GPT2Config(block_size=16, vocab_size=61, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(scope="module", params=["library", "lesson"])
def impl(request, notebooks):
    """The pieces of llmc_core.modern, or those lesson 09's notebook defines."""
    return modern if request.param == "library" else notebooks("09_beyond_gpt2")


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- the pieces

@pytest.mark.parametrize("shape", [(3, 8), (2, 5, 16)], ids=["2d", "3d"])
def test_rms_norm_matches_torch(impl, shape):
    x, w = randn(*shape, seed=1), randn(shape[-1], seed=2)
    torch.testing.assert_close(impl.rms_norm(x, w), F.rms_norm(x, (shape[-1],), w, eps=1e-6), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(impl.rms_norm(x), F.rms_norm(x, (shape[-1],), eps=1e-6), rtol=1e-12, atol=1e-12)


def rope_complex(x, base=10000.0):
    """RoPE as complex numbers: channel pair i at position t is z = x[2i] + i x[2i+1], times e^(i t theta_i)."""
    T, HS = x.shape[-2:]
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], HS // 2, 2).contiguous())
    theta = base ** (-2.0 * torch.arange(HS // 2, dtype=torch.float64) / HS)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]
    return torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).reshape(x.shape)


def test_rope_is_complex_rotation(impl):
    x = randn(2, 3, 7, 8, seed=3)
    torch.testing.assert_close(impl.apply_rope(x.float()).double(), rope_complex(x), rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_on_relative_position(impl):
    q, k = randn(1, 1, 1, 8, seed=4).float(), randn(1, 1, 1, 8, seed=5).float()
    T = 12  # the same q and k at every position: the score of (t, s) is a function of t - s
    qr, kr = impl.apply_rope(q.expand(1, 1, T, 8)), impl.apply_rope(k.expand(1, 1, T, 8))
    scores = (qr @ kr.transpose(-1, -2))[0, 0]
    torch.testing.assert_close(torch.diagonal(scores, -3), torch.full((T - 3,), scores[3, 0].item()),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        impl.apply_rope(torch.zeros(1, 1, 2, 5))


def test_qk_norm_normalizes_each_head_vector(impl):
    q, k = randn(2, 2, 5, 8, seed=6), randn(2, 2, 5, 8, seed=7)
    qn, kn = impl.qk_norm(q, k)
    torch.testing.assert_close(qn, F.rms_norm(q, (8,), eps=1e-6), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kn.pow(2).mean(-1), torch.ones(2, 2, 5, dtype=torch.float64), rtol=1e-5, atol=1e-5)


def test_relu2_and_softcap_gradients_match_autograd_of_their_formulas(impl):
    x = randn(50, seed=8).requires_grad_()
    for fn, expected_grad in ((impl.relu2, lambda x: 2 * torch.clamp(x, min=0)),
                              (lambda x: impl.softcap(x, 2.0), lambda x: 1 - torch.tanh(x / 2) ** 2)):
        (g,) = torch.autograd.grad(fn(x).sum(), x)
        torch.testing.assert_close(g, expected_grad(x.detach()), rtol=1e-12, atol=1e-12)
    big = torch.tensor([-1e4, -3.0, 0.0, 0.1, 1e4], dtype=torch.float64)
    capped = impl.softcap(big, 30.0)
    assert capped.abs().max() <= 30.0 and abs(capped[3] - 0.1) < 1e-5


# ---------------------------------------------------------------- Newton-Schulz and Muon

def with_singular_values(m, n, s, seed):
    """An (m, n) matrix with random singular vectors and the singular values s (float64)."""
    U, _ = torch.linalg.qr(randn(m, len(s), seed=seed))
    V, _ = torch.linalg.qr(randn(n, len(s), seed=seed + 1))
    return U @ torch.diag(s) @ V.T


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (32, 32)], ids=["wide", "tall", "square"])
def test_newton_schulz_keeps_singular_vectors_and_pushes_values_towards_one(impl, shape):
    s = torch.logspace(0, -2, min(shape), dtype=torch.float64)  # a spread of 100
    G = with_singular_values(*shape, s, seed=9)
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    X = impl.newton_schulz(G.float()).double()
    inner = U.T @ X @ Vh.T  # diagonal exactly when X has G's singular vectors
    off_diagonal = inner - torch.diag(torch.diagonal(inner))
    assert off_diagonal.abs().max() < 1e-3
    s_after = torch.linalg.svdvals(X)
    assert s_after.min() > 0.6 and s_after.max() < 1.25, s_after  # Muon's quintic: about [0.7, 1.2]


def test_cubic_newton_schulz_converges_to_the_polar_factor(impl):
    G = randn(12, 20, seed=10)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    X = impl.newton_schulz(G, steps=60, coeffs=(1.5, -0.5, 0.0))
    torch.testing.assert_close(X, U @ Vh, rtol=1e-8, atol=1e-8)


def test_muon_param_groups_split(impl):
    model = modern.GPT(CONFIG, modern.Recipe(rope=True, norm="rms", qk_norm=True, untie_head=True))
    names = {id(p): n for n, p in model.named_parameters()}
    muon, decay, no_decay = (sorted(names[id(p)] for p in g["params"]) for g in impl.muon_param_groups(model, 0.1))
    matrices = ("c_attn.weight", "c_proj.weight", "c_fc.weight")
    assert muon == sorted(n for n in names.values() if n.startswith("h.") and n.endswith(matrices))
    assert decay == ["lm_head", "wte.weight"]
    assert all(n.endswith(("bias", "_norm", "ln_1.weight", "ln_2.weight", "ln_f.weight")) for n in no_decay)
    assert len(muon) + len(decay) + len(no_decay) == len(names)


def test_lesson_head_logits_tied_and_untied(notebooks):
    nb = notebooks("09_beyond_gpt2")
    x, wte, head = randn(2, 3, 4, seed=30), randn(7, 4, seed=31).requires_grad_(), randn(7, 4, seed=32).requires_grad_()
    torch.testing.assert_close(nb.head_logits(x, wte), torch.einsum("btc,vc->btv", x, wte), rtol=1e-12, atol=1e-12)
    nb.head_logits(x, wte, head).sum().backward()
    assert wte.grad is None
    torch.testing.assert_close(head.grad, x.sum((0, 1)).expand(7, 4), rtol=1e-12, atol=1e-12)  # d(sum x.h_v)/dh_v


def test_muon_adamw_groups_equal_torch_adamw():
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(randn(4, 3, seed=11).float()), torch.nn.Parameter(randn(5, seed=12).float())
    a2, b2 = (torch.nn.Parameter(t.detach().clone()) for t in (a, b))
    ours = modern.Muon([{"params": [a], "weight_decay": 0.1}, {"params": [b]}], lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    ref = torch.optim.AdamW([{"params": [a2], "weight_decay": 0.1}, {"params": [b2], "weight_decay": 0.0}], lr=1e-2,
                            betas=(0.9, 0.95), eps=1e-8)
    for step in range(5):
        for p, q in ((a, a2), (b, b2)):
            p.grad = randn(*p.shape, seed=20 + step).float()
            q.grad = p.grad.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(a, a2, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(b, b2, rtol=1e-6, atol=1e-7)


def test_muon_step_with_exact_orthogonalization_is_the_polar_factor_of_the_momentum(impl):
    W = torch.nn.Parameter(randn(6, 10, seed=13))
    start = W.detach().clone()

    def polar(M):
        U, _, Vh = torch.linalg.svd(M, full_matrices=False)
        return U @ Vh

    opt = modern.Muon([{"params": [W], "muon": True}], lr=0.1, momentum=0.9, nesterov=False,
                      pieces=modern.Pieces(newton_schulz=polar, muon_update=impl.muon_update))
    g1, g2 = randn(6, 10, seed=14), randn(6, 10, seed=15)
    W.grad = g1
    opt.step()
    W.grad = g2
    opt.step()
    scale = math.sqrt(10 / 6)  # (n_in, n_out) = (6, 10): a wide matrix
    expected = start - 0.1 * scale * polar(g1) - 0.1 * scale * polar(0.9 * g1 + g2)
    torch.testing.assert_close(W.detach(), expected, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- the model

@pytest.mark.parametrize("attention, padded", [("manual", False), ("sdpa", True)], ids=["manual", "sdpa-padded"])
def test_options_off_is_gpt2(attention, padded):
    ours = modern.GPT(CONFIG, attention=attention, padded_vocab=padded, seed=3)
    ref = GPT2(CONFIG, attention=attention, padded_vocab=padded, seed=3)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (name, p), q in zip(ours.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(p, q), name  # the same initialization
    idx = torch.randint(0, 61, (2, 16), generator=torch.Generator().manual_seed(0))
    (l1, loss1), (l2, loss2) = ours(idx, idx), ref(idx, idx)
    torch.testing.assert_close(l1, l2, rtol=0, atol=0)
    torch.testing.assert_close(loss1, loss2, rtol=0, atol=0)


def test_each_option_changes_the_model_and_trains():
    idx = torch.randint(0, 61, (2, 16), generator=torch.Generator().manual_seed(1))
    base = modern.GPT(CONFIG, seed=3)(idx)
    for recipe in (modern.Recipe(rope=True), modern.Recipe(norm="rms"), modern.Recipe(qk_norm=True),
                   modern.Recipe(mlp="relu2"), modern.Recipe(softcap=0.05), modern.Recipe(untie_head=True)):
        model = modern.GPT(CONFIG, recipe, seed=3)
        assert not torch.allclose(model(idx), base), recipe
        _, loss = model(idx, idx)
        loss.backward()
        assert all(p.grad is not None for p in model.parameters()), recipe
    assert "wpe.weight" not in modern.GPT(CONFIG, modern.Recipe(rope=True)).state_dict()


def test_modern_model_loss_falls_under_muon():
    model = modern.GPT(CONFIG, modern.Recipe(**{k: v for k, v in modern.RECIPES["modern"].items() if k != "optimizer"}))
    opt = modern.Muon(modern.muon_param_groups(model, 0.0, 10.0), lr=3e-3)
    for g in opt.param_groups:
        g["lr"] = 3e-3 * g["lr_scale"]
    idx = torch.randint(0, 61, (4, 16), generator=torch.Generator().manual_seed(2))
    losses = []
    for _ in range(30):
        _, loss = model(idx, idx)
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.75 * losses[0] and losses == sorted(losses, reverse=True), losses[::5]


def test_bad_recipe_options_are_named():
    with pytest.raises(ValueError, match="norm"):
        modern.Recipe(norm="batch")
    with pytest.raises(ValueError, match="softcap"):
        modern.Recipe(softcap=-1.0)
    with pytest.raises(TypeError, match="rms_norm"):
        modern.Pieces(rms_norm=3)
