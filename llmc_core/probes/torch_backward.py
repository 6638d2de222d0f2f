"""Probes of lesson 05: PyTorch layers with explicit backward passes.

Inputs are float64 and seeded, so a right answer agrees with the solution to rounding and a
wrong one cannot hide: weights and biases are random (not ones and zeros), tokens repeat,
logits are far from uniform. Each backward is also run through `torch.autograd.gradcheck`.
"""
import numpy as np
import torch

from llmc_core.exercises import probe, raised
from llmc_core.gpt2 import GPT2Config

F64 = dict(rtol=1e-6, atol=1e-9)  # float64 inputs: only rounding may differ

FORWARDS = ("torch_backward/gelu_forward", "torch_backward/layernorm_forward", "torch_backward/linear_forward",
            "torch_backward/encoder_forward", "torch_backward/attention_forward", "torch_backward/crossentropy_forward")
# Which earlier exercises each exercise runs: a backward is probed on its own forward's cache.
USES = {
    "torch_backward/gelu_backward": ("torch_backward/gelu_forward",),
    "torch_backward/layernorm_backward": ("torch_backward/layernorm_forward",),
    "torch_backward/linear_backward": ("torch_backward/linear_forward",),
    "torch_backward/encoder_backward": ("torch_backward/encoder_forward",),
    "torch_backward/attention_backward": ("torch_backward/attention_forward",),
    "torch_backward/crossentropy_backward": ("torch_backward/crossentropy_forward",),
    "torch_backward/gelu_linear_backward": ("torch_backward/gelu_forward", "torch_backward/gelu_backward",
                                            "torch_backward/linear_forward", "torch_backward/linear_backward"),
    "torch_backward/gpt2": FORWARDS + tuple(f.replace("_forward", "_backward") for f in FORWARDS)
                           + ("torch_backward/gelu_linear_backward",),
}
# The first hint of a failing check names the concept; the probe's own hint (the formula) comes on request.
NUDGES = {
    "torch_backward/gelu_forward": "The same tanh-form GELU as lesson 02, on torch tensors, returning what backward needs.",
    "torch_backward/gelu_backward": "Lesson 03 derived GELU's gradient; here it reads the forward's cache.",
    "torch_backward/layernorm_forward": "Layernorm over the last axis; cache the mean and the reciprocal standard deviation.",
    "torch_backward/layernorm_backward": "Lesson 03's layernorm gradient, from the cached mean and rstd.",
    "torch_backward/linear_forward": "A matrix product plus an optional bias.",
    "torch_backward/linear_backward": "Each gradient of a matrix product is a product with the other factor transposed.",
    "torch_backward/encoder_forward": "Token embeddings plus position embeddings.",
    "torch_backward/encoder_backward": "Each embedding row collects the gradients of every position that read it.",
    "torch_backward/attention_forward": "Causal multi-head attention; cache what the backward needs.",
    "torch_backward/attention_backward": "Lesson 03's attention backward: run the forward's steps in reverse.",
    "torch_backward/crossentropy_forward": "Cross-entropy from logits, computed stably with the log-sum-exp.",
    "torch_backward/crossentropy_backward": "Softmax and cross-entropy together have a simple gradient.",
    "torch_backward/gelu_linear_backward": "Recompute what the forward did not keep, then chain the two backwards.",
    "torch_backward/gpt2": "Build the model from your Functions so that loss.backward() runs your backward passes.",
}


def randn(rng, *shape, scale=1.0, shift=0.0):
    """A float64 tensor of normal samples from `rng`."""
    return torch.from_numpy(rng.standard_normal(shape) * scale + shift)


def leaf(t):
    """`t` as a leaf that collects gradients, for gradcheck."""
    return t.clone().requires_grad_(True)


def array(t):
    return t.detach().numpy().copy()


def gradcheck(function, *inputs):
    """True when the Function's backward agrees with finite differences of its forward."""
    return bool(torch.autograd.gradcheck(function.apply, inputs, raise_exception=False))


# ---------------------------------------------------------------- GELU

@probe("torch_backward/gelu_forward", points=2, hint="gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise.", **F64)
def gelu_values(nb):
    x = randn(np.random.default_rng(0), 3, 7, scale=2.0)
    out, cache = nb.gelu_forward(x)
    return {"out": array(out), "cache_length": len(cache)}


@probe("torch_backward/gelu_backward", points=2, hint="Differentiate 0.5 x (1 + tanh u) by the product rule; du/dx = sqrt(2/pi) (1 + 3*0.044715 x^2); multiply by dout.", **F64)
def gelu_gradient(nb):
    rng = np.random.default_rng(1)
    x, dout = randn(rng, 3, 7, scale=2.0), randn(rng, 3, 7)
    _, cache = nb.gelu_forward(x)
    return array(nb.gelu_backward(dout, cache))


@probe("torch_backward/gelu_backward", points=1, hint="gradcheck compares GeluFunction's backward with finite differences of its forward.")
def gelu_gradcheck(nb):
    return gradcheck(nb.GeluFunction, leaf(randn(np.random.default_rng(2), 2, 5, scale=2.0)))


# ---------------------------------------------------------------- LayerNorm

def layernorm_inputs(seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, 2, 3, 8, scale=2.0, shift=3.0)  # mean far from 0, variance far from 1
    return x, randn(rng, 8, scale=0.5, shift=1.0), randn(rng, 8, scale=0.5)


@probe("torch_backward/layernorm_forward", points=2, hint="Normalize over the last axis with the biased variance and eps=1e-5, then out = norm * weight + bias.", **F64)
def normalized_values(nb):
    out, _ = nb.layernorm_forward(*layernorm_inputs(3))
    return array(out)


@probe("torch_backward/layernorm_forward", points=1, hint="cache = (x, weight, mean, rstd); mean and rstd are (B, T), rstd = 1/sqrt(var + eps).", **F64)
def cached_mean_and_rstd(nb):
    _, cache = nb.layernorm_forward(*layernorm_inputs(4))
    x, weight, mean, rstd = cache
    return {"mean": array(mean), "rstd": array(rstd)}


@probe("torch_backward/layernorm_forward", points=1, hint="A row of equal values has variance 0: eps keeps rstd finite and the output equals bias.", **F64)
def constant_row(nb):
    x, weight, bias = layernorm_inputs(5)
    x[0, 1] = 7.0
    out, _ = nb.layernorm_forward(x, weight, bias)
    return array(out[0])


@probe("torch_backward/layernorm_backward", points=2, hint="dx = rstd * (g - mean(g) - norm * mean(g * norm)) with g = dout * weight; dweight sums dout * norm over B and T.", **F64)
def layernorm_gradients(nb):
    x, weight, bias = layernorm_inputs(6)
    dout = randn(np.random.default_rng(7), 2, 3, 8)
    _, cache = nb.layernorm_forward(x, weight, bias)
    dx, dweight, dbias = nb.layernorm_backward(dout, cache)
    return {"dx": array(dx), "dweight": array(dweight), "dbias": array(dbias)}


@probe("torch_backward/layernorm_backward", points=1, hint="gradcheck compares LayerNormFunction's backward with finite differences of its forward.")
def layernorm_gradcheck(nb):
    return gradcheck(nb.LayerNormFunction, *map(leaf, layernorm_inputs(8)))


# ---------------------------------------------------------------- Linear

def linear_inputs(seed):
    rng = np.random.default_rng(seed)
    return randn(rng, 2, 3, 4), randn(rng, 4, 5), randn(rng, 5)


@probe("torch_backward/linear_forward", points=1, hint="out = x @ weight + bias, with weight (in, out).", **F64)
def linear_with_bias(nb):
    out, _ = nb.linear_forward(*linear_inputs(9))
    return array(out)


@probe("torch_backward/linear_forward", points=1, hint="bias=None means no bias: out = x @ weight.", **F64)
def linear_without_bias(nb):
    x, weight, _ = linear_inputs(10)
    out, _ = nb.linear_forward(x, weight, None)
    return array(out)


@probe("torch_backward/linear_backward", points=2, hint="dx = dout @ weight.T; dweight = x.T @ dout with B and T flattened into one axis; dbias sums dout over B and T.", **F64)
def linear_gradients(nb):
    x, weight, bias = linear_inputs(11)
    dout = randn(np.random.default_rng(12), 2, 3, 5)
    _, cache = nb.linear_forward(x, weight, bias)
    dx, dweight, dbias = nb.linear_backward(dout, cache)
    return {"dx": array(dx), "dweight": array(dweight), "dbias": array(dbias)}


@probe("torch_backward/linear_backward", points=1, hint="Without a bias, return None as its gradient.", **F64)
def linear_gradients_without_bias(nb):
    x, weight, _ = linear_inputs(13)
    dout = randn(np.random.default_rng(14), 2, 3, 5)
    _, cache = nb.linear_forward(x, weight, None)
    dx, dweight, dbias = nb.linear_backward(dout, cache)
    return {"dx": array(dx), "dweight": array(dweight), "dbias_is_none": dbias is None}


@probe("torch_backward/linear_backward", points=1, hint="gradcheck compares LinearFunction's backward with finite differences of its forward.")
def linear_gradcheck(nb):
    return gradcheck(nb.LinearFunction, *map(leaf, linear_inputs(15)))


# ---------------------------------------------------------------- Encoder

def encoder_inputs(seed):
    rng = np.random.default_rng(seed)
    idx = torch.from_numpy(rng.integers(0, 6, size=(3, 4)))  # 12 draws from 6 tokens: repeats
    return idx, randn(rng, 6, 3), randn(rng, 5, 3)


@probe("torch_backward/encoder_forward", points=2, hint="out[b, t] = wte[idx[b, t]] + wpe[t]; only the first T rows of wpe are used.", **F64)
def embeddings_added(nb):
    out, _ = nb.encoder_forward(*encoder_inputs(16))
    return array(out)


@probe("torch_backward/encoder_forward", points=1, hint=("With T larger than the rows of wpe there is no position embedding: raise ValueError.",))
def too_long_sequence(nb):
    idx, wte, wpe = encoder_inputs(17)
    return raised(nb.encoder_forward, torch.zeros(1, 6, dtype=torch.int64), wte, wpe)


@probe("torch_backward/encoder_backward", points=2, hint="A token used several times gets the sum of all its gradients: use index_add_, not dwte[idx] += dout.", **F64)
def gradients_with_repeated_tokens(nb):
    idx, wte, wpe = encoder_inputs(18)
    dout = randn(np.random.default_rng(19), 3, 4, 3)
    _, cache = nb.encoder_forward(idx, wte, wpe)
    dwte, dwpe = nb.encoder_backward(dout, cache)
    return {"dwte": array(dwte), "dwpe": array(dwpe)}


@probe("torch_backward/encoder_backward", points=1, hint="gradcheck compares EncoderFunction's backward with finite differences; idx gets no gradient (None).")
def encoder_gradcheck(nb):
    idx, wte, wpe = encoder_inputs(20)
    return gradcheck(nb.EncoderFunction, idx, leaf(wte), leaf(wpe))


# ---------------------------------------------------------------- Attention

@probe("torch_backward/attention_forward", points=2, hint="Per head: softmax of q k^T / sqrt(HS) with future positions masked to -inf, times v; heads side by side in the output.", **F64)
def attention_output(nb):
    qkv = randn(np.random.default_rng(21), 2, 5, 24)  # C = 8, two heads of 4 channels
    out, _ = nb.attention_forward(qkv, 2)
    return array(out)


@probe("torch_backward/attention_forward", points=1, hint="cache[3] is att (B, NH, T, T): each row sums to 1 and is zero above the diagonal.", **F64)
def attention_probabilities(nb):
    qkv = randn(np.random.default_rng(22), 1, 5, 24, scale=2.0)
    _, cache = nb.attention_forward(qkv, 2)
    return array(cache[3][0])


@probe("torch_backward/attention_forward", points=1, hint="With n_head=1 the single head has all C channels, HS = C.", **F64)
def single_head(nb):
    qkv = randn(np.random.default_rng(23), 2, 4, 12)
    out, _ = nb.attention_forward(qkv, 1)
    return array(out)


@probe("torch_backward/attention_forward", points=1, hint=("C must split evenly into n_head heads; otherwise raise ValueError.",))
def heads_do_not_divide_channels(nb):
    return raised(nb.attention_forward, randn(np.random.default_rng(24), 1, 3, 24), 3)


@probe("torch_backward/attention_backward", points=2, hint="datt = dy v^T, dv = att^T dy, dscores = att * (datt - rowsum(datt * att)), then dq = dscores k / sqrt(HS), dk = dscores^T q / sqrt(HS).", **F64,
       layout=("b", "t", [("part", ("q", "k", "v")), ("head", 2), ("channel", 4)]))
def attention_gradient(nb):
    """qkv (2, 5, 24) and dout (2, 5, 8) seeded normal(25), float64, n_head 2 (HS 4)"""
    rng = np.random.default_rng(25)
    qkv, dout = randn(rng, 2, 5, 24), randn(rng, 2, 5, 8)
    _, cache = nb.attention_forward(qkv, 2)
    return array(nb.attention_backward(dout, cache))


@probe("torch_backward/attention_backward", points=1, hint="gradcheck compares AttentionFunction's backward with finite differences; n_head gets no gradient (None).")
def attention_gradcheck(nb):
    return gradcheck(nb.AttentionFunction, leaf(randn(np.random.default_rng(26), 2, 4, 12)), 2)


# ---------------------------------------------------------------- Cross-entropy

def crossentropy_inputs(seed):
    rng = np.random.default_rng(seed)
    return randn(rng, 2, 3, 7, scale=3.0), torch.from_numpy(rng.integers(0, 7, size=(2, 3)))


@probe("torch_backward/crossentropy_forward", points=2, hint="loss = mean over B, T of lse - logits[target], lse = log(sum(exp(logits))) over V.", **F64)
def loss_and_lse(nb):
    loss, cache = nb.crossentropy_forward(*crossentropy_inputs(27))
    return {"loss": float(loss), "lse": array(cache[2])}


@probe("torch_backward/crossentropy_forward", points=1, hint="Subtract each row's max before exp, or exp overflows to inf for large logits.", **F64)
def large_logits_stay_finite(nb):
    logits, targets = crossentropy_inputs(28)
    loss, _ = nb.crossentropy_forward(logits + 1000.0, targets)
    return float(loss)


@probe("torch_backward/crossentropy_forward", points=1, hint=("A target outside 0..V-1 is no token: raise ValueError.",))
def target_out_of_range(nb):
    logits, targets = crossentropy_inputs(29)
    targets[1, 2] = 7
    return raised(nb.crossentropy_forward, logits, targets)


@probe("torch_backward/crossentropy_backward", points=2, hint="dlogits = (softmax(logits) - onehot(targets)) * dloss / (B*T).", **F64)
def crossentropy_gradient(nb):
    logits, targets = crossentropy_inputs(30)
    _, cache = nb.crossentropy_forward(logits, targets)
    return array(nb.crossentropy_backward(torch.tensor(2.5, dtype=torch.float64), cache))


@probe("torch_backward/crossentropy_backward", points=1, hint="gradcheck compares SoftmaxCrossEntropyFunction's backward with finite differences; targets get None.")
def crossentropy_gradcheck(nb):
    logits, targets = crossentropy_inputs(31)
    return gradcheck(nb.SoftmaxCrossEntropyFunction, leaf(logits), targets)


# ---------------------------------------------------------------- GELU + linear, recomputed

def gelu_linear_inputs(seed):
    rng = np.random.default_rng(seed)
    return randn(rng, 2, 3, 6, scale=2.0), randn(rng, 6, 4), randn(rng, 4)


@probe("torch_backward/gelu_linear_backward", points=2, hint="Recompute h = gelu(pre), run linear_backward with cache (h, weight, bias), then gelu_backward on dh.", **F64)
def gelu_linear_gradients(nb):
    pre, weight, bias = gelu_linear_inputs(32)
    dout = randn(np.random.default_rng(33), 2, 3, 4)
    _, cache = nb.gelu_linear_forward(pre, weight, bias)
    dpre, dweight, dbias = nb.gelu_linear_backward(dout, cache)
    return {"dpre": array(dpre), "dweight": array(dweight), "dbias": array(dbias)}


@probe("torch_backward/gelu_linear_backward", points=1, hint="gradcheck compares GeluLinearFunction's backward with finite differences of its forward.")
def gelu_linear_gradcheck(nb):
    return gradcheck(nb.GeluLinearFunction, *map(leaf, gelu_linear_inputs(34)))


# ---------------------------------------------------------------- The model

PROBE_CONFIG = GPT2Config(block_size=8, vocab_size=16, n_layer=2, n_head=2, n_embd=8)


def seeded_model(nb, seed, **options):
    """A float64 ExplicitGPT2 of PROBE_CONFIG whose every parameter is drawn from `rng`."""
    rng = np.random.default_rng(seed)
    model = nb.ExplicitGPT2(PROBE_CONFIG, **options).double()
    state = {}
    for name, value in sorted(model.state_dict().items()):
        shift = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0
        state[name] = randn(rng, *value.shape, scale=0.3, shift=shift)
    model.load_state_dict(state)
    return model


def seeded_tokens(seed, B=2, T=6):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, PROBE_CONFIG.vocab_size, size=(2, B, T))
    return torch.from_numpy(idx[0]), torch.from_numpy(idx[1])


GRADIENTS_PROBED = ("wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.attn.c_attn.weight",
                    "h.0.mlp.c_fc.bias", "h.1.attn.c_proj.weight", "h.1.mlp.c_proj.weight", "ln_f.bias")


@probe("torch_backward/gpt2", points=2, hint="encoder -> blocks -> ln_f -> logits = x @ wte.T (no bias) -> fused cross-entropy.", **F64, uses=FORWARDS)
def logits_and_loss(nb):
    model = seeded_model(nb, 35)
    idx, targets = seeded_tokens(36)
    logits, loss = model(idx, targets)
    return {"logits": array(logits), "loss": float(loss.detach())}


@probe("torch_backward/gpt2", points=2, hint="Use the Functions for every layer so that loss.backward() reaches every parameter, wte twice (embedding and lm head).", **F64)
def parameter_gradients(nb):
    model = seeded_model(nb, 37)
    _, loss = model(*seeded_tokens(38))
    loss.backward()
    params = dict(model.named_parameters())
    return {name: array(params[name].grad) for name in GRADIENTS_PROBED}


@probe("torch_backward/gpt2", points=1, hint="Without targets, model(idx) returns the logits tensor alone, (B, T, V).", uses=FORWARDS)
def logits_without_targets(nb):
    logits = seeded_model(nb, 39)(seeded_tokens(40)[0])
    return {"is_tensor": isinstance(logits, torch.Tensor), "shape": list(logits.shape)}


@probe("torch_backward/gpt2", points=1, hint=("T larger than config.block_size has no position embedding: raise ValueError.",), uses=FORWARDS)
def sequence_longer_than_block_size(nb):
    model = seeded_model(nb, 41)
    return raised(model, torch.zeros(1, PROBE_CONFIG.block_size + 1, dtype=torch.int64))


@probe("torch_backward/gpt2", points=1, hint="ExplicitGPT2(config, recompute_gelu=True) must give the same gradients as without recomputation.", **F64)
def recompute_gelu_same_gradients(nb):
    model = seeded_model(nb, 42, recompute_gelu=True)
    _, loss = model(*seeded_tokens(43))
    loss.backward()
    params = dict(model.named_parameters())
    return {name: array(params[name].grad) for name in ("h.0.mlp.c_fc.weight", "h.1.mlp.c_proj.weight")}
