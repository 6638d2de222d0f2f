"""Probes of lesson 09: the modern recipe's pieces.

Inputs are chosen so that the usual slips show: RMSNorm over the wrong axis or with the mean
subtracted; RoPE with halves instead of interleaved pairs, or a position off by one; QK-norm
over T instead of HS; ReLU² without the ReLU; Newton-Schulz on a tall matrix (the transpose) and
with coefficients other than Muon's; Muon's momentum without Nesterov, or without the shape
scale; a parameter split that gives the embeddings or the head to Muon.
"""
import torch

from llmc_core.exercises import probe, raised
from llmc_core.gpt2 import GPT2Config
from llmc_core.modern import GPT, Recipe

# Which earlier exercises each exercise runs: QK-norm is RMSNorm applied to each head's q and k.
# (muon_update is probed with an exact orthogonalization, SVD's polar factor, so it runs no newton_schulz.)
USES = {
    "modern/qk_norm": ("modern/rms_norm",),
}
# The first hint of a failing check names the concept; the probe's own hint (the formula or API) comes on request.
NUDGES = {
    "modern/rms_norm":
        ("RMSNorm rescales each vector by its root mean square; unlike LayerNorm it subtracts no "
         "mean and adds no bias."),
    "modern/rope":
        ("RoPE turns each pair of channels by an angle that grows with the position and shrinks "
         "with the pair's index."),
    "modern/qk_norm":
        "QK-norm normalizes each head's query and key vectors, one vector per head and position.",
    "modern/relu2": "ReLU squared: zero for negative inputs, a parabola for positive ones.",
    "modern/softcap":
        ("Soft-capping squashes logits smoothly into (-cap, cap), leaving small ones almost "
         "unchanged."),
    "modern/head":
        ("Tied means the output head reuses the token embedding matrix; untied means it has a "
         "matrix of its own."),
    "modern/newton_schulz":
        ("Newton-Schulz iterates a matrix polynomial that pushes every singular value towards 1, "
         "after a normalization."),
    "modern/muon_update":
        ("Muon orthogonalizes a momentum of the gradient, then scales the step by the weight's "
         "shape."),
    "modern/param_split":
        ("Muon is for the hidden 2-D weight matrices; embeddings, the head and 1-D parameters stay"
         " with AdamW."),
}

# Named tolerances: the probes run in float32
FLOAT32 = dict(rtol=1e-5, atol=1e-6)  # a few float32 roundings: norms, products, one orthogonalization
ROTATION = dict(rtol=1e-4, atol=1e-5)  # sin and cos of angles up to t * theta, in float32
ELEMENTWISE = dict(rtol=1e-6, atol=1e-7)  # one float32 operation per element
ELEMENTWISE_ABS = dict(rtol=1e-6, atol=1e-6)  # tanh near +-cap: an absolute floor
ITERATION = dict(rtol=1e-3, atol=1e-4)  # Newton-Schulz iterates: rounding grows with the steps
SETTINGS = dict(rtol=1e-5, atol=1e-7)  # weight decays and learning-rate scales, passed through unchanged


def randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def array(t):
    return t.detach().numpy().copy()


# --- rms_norm ---------------------------------------------------------------------------------------

@probe("modern/rms_norm", points=2, **FLOAT32,
       hint=("Divide by sqrt(mean(x**2) + eps) over the last dim (keepdim), then multiply by "
             "weight; no mean is subtracted."))
def normalized_with_gain(nb):
    x = randn(2, 3, 8, seed=0) * 3 + 1  # a non-zero mean, so subtracting it shows
    return array(nb.rms_norm(x, randn(8, seed=1)))


@probe("modern/rms_norm", points=1, **FLOAT32,
       hint="weight=None: no gain; eps is added inside the square root, so a zero row stays zero.")
def no_gain_and_zero_row(nb):
    x = torch.cat([randn(1, 6, seed=2), torch.zeros(1, 6)])
    return array(nb.rms_norm(x)) if nb.rms_norm(x).isfinite().all() else "not finite"


# --- rope -------------------------------------------------------------------------------------------

@probe("modern/rope", points=2, **ROTATION,
       hint=("Pairs are (x[..., 0::2], x[..., 1::2]); pair i at position t turns by t * "
             "base**(-2i/HS); position 0 is not rotated."))
def rotated_pairs(nb):
    return array(nb.apply_rope(randn(1, 2, 5, 8, seed=3)))


@probe("modern/rope", points=1, **ROTATION,
       hint="Use the base argument: theta_i = base ** (-2i / HS).")
def other_base(nb):
    return array(nb.apply_rope(randn(3, 4, 6, seed=4), base=100.0))


@probe("modern/rope", points=1,
       hint=("Raise ValueError when the head size (the last dim) is odd: channels are rotated in "
             "pairs."))
def odd_head_size(nb):
    return raised(nb.apply_rope, torch.zeros(1, 1, 2, 5))


# --- qk_norm ----------------------------------------------------------------------------------------

@probe("modern/qk_norm", points=2, **FLOAT32,
       hint=("Normalize each head's vector: the mean of squares over the last dim (HS), not over "
             "time; then the gains."))
def heads_normalized(nb):
    q, k = randn(2, 2, 4, 8, seed=5) * 5, randn(2, 2, 4, 8, seed=6) * 0.1
    qn, kn = nb.qk_norm(q, k, randn(8, seed=7), randn(8, seed=8))
    return [array(qn), array(kn)]


@probe("modern/qk_norm", points=1, **FLOAT32,
       hint="q_gain and k_gain default to None: no gain.")
def without_gains(nb):
    return [array(t) for t in nb.qk_norm(randn(1, 1, 3, 4, seed=9), randn(1, 1, 3, 4, seed=10))]


# --- relu2 ------------------------------------------------------------------------------------------

@probe("modern/relu2", points=1, **ELEMENTWISE,
       hint="relu first, then square: negative inputs give 0, not x**2.")
def squared_relu(nb):
    return array(nb.relu2(torch.linspace(-3, 3, 13)))


@probe("modern/relu2", points=1, **ELEMENTWISE,
       hint="Use torch operations so autograd can differentiate: the gradient is 2 relu(x).")
def relu2_gradient(nb):
    x = torch.linspace(-2, 2, 9, requires_grad=True)
    nb.relu2(x).sum().backward()
    return array(x.grad)


# --- softcap ----------------------------------------------------------------------------------------

@probe("modern/softcap", points=2, **ELEMENTWISE_ABS,
       hint="cap * tanh(logits / cap): near the identity for small logits, never past +-cap.")
def capped(nb):
    logits = torch.tensor([-1000.0, -40.0, -1.0, 0.0, 0.5, 20.0, 1000.0])
    return [array(nb.softcap(logits, 30.0)), array(nb.softcap(logits, 5.0))]


# --- head -------------------------------------------------------------------------------------------

@probe("modern/head", points=1, **FLOAT32,
       hint="Tied: logits = x @ wte.T; untied: logits = x @ lm_head.T. Both (V, C) matrices.")
def head_values(nb):
    x, wte, head = randn(2, 3, 4, seed=11), randn(7, 4, seed=12), randn(7, 4, seed=13)
    return [array(nb.head_logits(x, wte)), array(nb.head_logits(x, wte, head))]


@probe("modern/head", points=1, **FLOAT32,
       hint=("With lm_head given, wte must get no gradient from the head (it is used only as the "
             "input embedding)."))
def head_gradients(nb):
    x, wte, head = randn(2, 3, 4, seed=14), randn(7, 4, seed=15).requires_grad_(), randn(7, 4, seed=16).requires_grad_()
    (nb.head_logits(x, wte, head) ** 2).sum().backward()
    return ["no grad" if wte.grad is None else array(wte.grad), array(head.grad)]


# --- newton_schulz ----------------------------------------------------------------------------------

def ns_input(m, n, seed):
    """An (m, n) matrix whose singular values spread from 1 to 0.01."""
    U, _ = torch.linalg.qr(randn(m, min(m, n), seed=seed))
    V, _ = torch.linalg.qr(randn(n, min(m, n), seed=seed + 1))
    return U @ torch.diag(torch.logspace(0, -2, min(m, n))) @ V.T


@probe("modern/newton_schulz", points=2, **ITERATION,
       hint=("Scale G by its Frobenius norm first; each step X <- a X + (b A + c A @ A) @ X with A"
             " = X @ X.T."))
def wide_matrix(nb):
    return array(nb.newton_schulz(ns_input(6, 10, seed=17)))


@probe("modern/newton_schulz", points=1, **ITERATION,
       hint="A tall matrix (m > n): work on X.T, so A is (n, n), and transpose back at the end.")
def tall_matrix(nb):
    return array(nb.newton_schulz(ns_input(10, 4, seed=19)))


@probe("modern/newton_schulz", points=1, **ITERATION,
       hint="Use the steps and coeffs arguments: (1.5, -0.5, 0.0) is the classic cubic iteration.")
def cubic_many_steps(nb):
    return array(nb.newton_schulz(ns_input(5, 5, seed=21), steps=30, coeffs=(1.5, -0.5, 0.0)))


# --- muon_update ------------------------------------------------------------------------------------

def polar(M):
    U, _, Vh = torch.linalg.svd(M, full_matrices=False)
    return U @ Vh


@probe("modern/muon_update", points=2, **FLOAT32,
       hint=("buf <- momentum * buf + grad (in place); Nesterov: orthogonalize(grad + momentum * "
             "buf); times sqrt(max(1, n_out / n_in))."))
def two_steps_nesterov(nb):
    buf = torch.zeros(4, 6)
    steps = [nb.muon_update(randn(4, 6, seed=s), buf, 0.9, True, polar) for s in (23, 24)]
    return [array(steps[0]), array(steps[1]), array(buf)]


@probe("modern/muon_update", points=1, **FLOAT32,
       hint=("nesterov=False: the step is orthogonalize(buf); a tall weight (n_in > n_out) gets "
             "scale 1."))
def plain_momentum_tall(nb):
    buf = randn(6, 3, seed=25)
    return [array(nb.muon_update(randn(6, 3, seed=26), buf, 0.5, False, polar)), array(buf)]


# --- param_split ------------------------------------------------------------------------------------

def describe_groups(model, groups):
    names = {id(p): n for n, p in model.named_parameters()}
    return [{"params": [names[id(p)] for p in g["params"]], "muon": bool(g.get("muon", False)),
             "weight_decay": float(g["weight_decay"]), "lr_scale": float(g.get("lr_scale", 1.0))} for g in groups]


@probe("modern/param_split", points=2, **SETTINGS,
       hint=("Muon: 2-D parameters whose name starts with 'h.' (the blocks' matrices); AdamW with "
             "decay: other 2-D ones (wte, wpe, lm_head); AdamW without decay: the rest."))
def modern_model_split(nb):
    model = GPT(GPT2Config(block_size=8, vocab_size=16, n_layer=2, n_head=2, n_embd=8),
                Recipe(norm="rms", qk_norm=True, untie_head=True))
    return describe_groups(model, nb.muon_param_groups(model, 0.1, 5.0))


@probe("modern/param_split", points=1, **SETTINGS,
       hint=("Skip parameters with requires_grad False; keep model.named_parameters() order in "
             "each group."))
def frozen_and_gpt2(nb):
    model = GPT(GPT2Config(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8))
    model.h[0].attn.c_attn.weight.requires_grad_(False)
    return describe_groups(model, nb.muon_param_groups(model, 0.0, 1.0))
