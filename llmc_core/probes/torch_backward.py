"""Probes of lesson 05: `torch.autograd.Function`s, what they save, and memory measured.

The gradient formulas are lesson 03's and the lesson hands them over; these probes check the new part:
the Function's mechanics (outputs, one gradient per input, None where there is none,
`ctx.needs_input_grad`), which tensors each Function keeps for its backward, and the memory count.
Inputs are float64 and seeded, so a right answer agrees with the solution to rounding and a
wrong one cannot hide: weights and biases are random (not ones and zeros), tokens repeat.
Each Function is also run through `torch.autograd.gradcheck`, an independent reference.
"""
import numpy as np
import torch

from llmc_core.exercises import probe, raised
from llmc_core.gpt2 import GPT2, GPT2Config

F64 = dict(rtol=1e-6, atol=1e-9)  # float64 inputs: only rounding may differ

FUNCTIONS = ("torch_backward/gelu_function", "torch_backward/linear_function", "torch_backward/layernorm_function")
# Which earlier exercises each exercise runs: the model is built from the learner's Functions.
USES = {
    "torch_backward/gpt2": FUNCTIONS + ("torch_backward/attention_recompute", "torch_backward/gelu_linear_backward"),
}
# The first hint of a failing check names the concept; the probe's own hint (the formula or API) comes on request.
NUDGES = {
    "torch_backward/gelu_function":
        ("forward computes and saves what backward needs with ctx.save_for_backward; backward "
         "reads ctx.saved_tensors."),
    "torch_backward/linear_function":
        ("backward returns one gradient per input of forward, None where an input needs none: "
         "ctx.needs_input_grad says which."),
    "torch_backward/layernorm_function":
        ("The next linear layer keeps LayerNorm's output alive anyway: save that, and recover the "
         "normalized input from it."),
    "torch_backward/attention_recompute":
        "Keep qkv only; the backward recomputes the attention probabilities from q and k.",
    "torch_backward/gelu_linear_backward":
        ("Keep the pre-activation only; the backward recomputes gelu(pre), then chains the linear "
         "and the GELU gradients."),
    "torch_backward/saved_bytes":
        "Saved-tensor hooks see every tensor an operation saves for its backward, as it is saved.",
    "torch_backward/gpt2":
        "Build the model from your Functions so that loss.backward() runs your backward passes.",
}


def randn(rng, *shape, scale=1.0, shift=0.0):
    """A float64 tensor of normal samples from `rng`."""
    return torch.from_numpy(rng.standard_normal(shape) * scale + shift)


def leaf(t):
    """`t` as a leaf that collects gradients."""
    return t.clone().requires_grad_(True)


def array(t):
    return t.detach().numpy().copy()


def gradcheck(function, *inputs):
    """True when the Function's backward agrees with finite differences of its forward."""
    return bool(torch.autograd.gradcheck(function.apply, inputs, raise_exception=False))


def gradients(out, inputs, seed):
    """d(out * dout).sum() / d input for each input, with dout seeded: what the Function's backward gives."""
    dout = randn(np.random.default_rng(seed), *out.shape)
    return [array(g) for g in torch.autograd.grad(out, inputs, dout)]


def saved_kinds(out, named):
    """What the node behind `out` saved: per saved tensor, the name in `named` sharing its storage, else its shape."""
    ptrs = {t.untyped_storage().data_ptr(): name for name, t in named.items()}
    kinds = []
    for t in out.grad_fn.saved_tensors:
        if t is None:
            kinds.append("None")
        else:
            kinds.append(ptrs.get(t.untyped_storage().data_ptr(), f"a new tensor of shape {list(t.shape)}"))
    return sorted(kinds)


def returned(out, dout):
    """What the Function's own backward returns for `dout`, position by position: "tensor" or "None"."""
    grads = out.grad_fn.apply(dout)  # calls the Function's backward directly, with the ctx of this node
    return ["None" if g is None else "tensor" for g in grads]


# --- gelu_function ----------------------------------------------------------------------------------

def gelu_input(seed):
    return leaf(randn(np.random.default_rng(seed), 3, 7, scale=2.0))


@probe("torch_backward/gelu_function", points=2, **F64,
       hint="forward: ctx.save_for_backward(x); return gelu(x).")
def gelu_values(nb):
    """x (3, 7) seeded normal(0) * 2, float64; out = GeluFunction.apply(x)"""
    return array(nb.GeluFunction.apply(gelu_input(0)))


@probe("torch_backward/gelu_function", points=2, **F64,
       hint="backward: (x,) = ctx.saved_tensors; return dout * gelu_derivative(x).")
def gelu_gradient(nb):
    """x (3, 7) seeded normal(1) * 2; the gradient of (GeluFunction.apply(x) * dout).sum(), dout seeded normal(2)"""
    x = gelu_input(1)
    return gradients(nb.GeluFunction.apply(x), [x], seed=2)[0]


@probe("torch_backward/gelu_function", points=1,
       hint=("torch.autograd.gradcheck(GeluFunction.apply, (x,)) must be True: backward must match"
             " finite differences of forward."))
def gelu_gradcheck(nb):
    return gradcheck(nb.GeluFunction, leaf(randn(np.random.default_rng(3), 2, 5, scale=2.0)))


@probe("torch_backward/gelu_function", points=1,
       hint="Save the input x itself, and nothing else: the backward recomputes the rest from it.")
def gelu_saves_its_input(nb):
    """x (3, 7); what GeluFunction.apply(x) keeps for its backward"""
    x = gelu_input(4)
    return saved_kinds(nb.GeluFunction.apply(x), {"the input x": x})


# --- linear_function --------------------------------------------------------------------------------

def linear_inputs(seed):
    rng = np.random.default_rng(seed)
    return leaf(randn(rng, 2, 3, 4)), leaf(randn(rng, 4, 5)), leaf(randn(rng, 5))


@probe("torch_backward/linear_function", points=1, **F64,
       hint="out = x @ weight + bias, with weight (IC, OC); bias=None means no bias.")
def linear_values(nb):
    """x (2, 3, 4), weight (4, 5), bias (5,) seeded normal(10); LinearFunction.apply with the bias, then with None"""
    x, weight, bias = linear_inputs(10)
    return [array(nb.LinearFunction.apply(x, weight, bias)), array(nb.LinearFunction.apply(x, weight, None))]


@probe("torch_backward/linear_function", points=2, **F64,
       hint=("dx = dout @ weight.T; dweight = x.T @ dout with B and T flattened into one axis; "
             "dbias sums dout over B and T."))
def linear_gradients(nb):
    """x (2, 3, 4), weight (4, 5), bias (5,) seeded normal(11); gradients for dout seeded normal(12)"""
    inputs = linear_inputs(11)
    return gradients(nb.LinearFunction.apply(*inputs), inputs, seed=12)


@probe("torch_backward/linear_function", points=1,
       hint=("With bias=None, backward returns None in bias's place: ctx.needs_input_grad[2] is "
             "False."))
def none_for_a_missing_bias(nb):
    """x, weight require grad, bias=None; what backward returns for (dx, dweight, dbias)"""
    x, weight, _ = linear_inputs(13)
    return returned(nb.LinearFunction.apply(x, weight, None), torch.ones(2, 3, 5, dtype=torch.float64))


@probe("torch_backward/linear_function", points=1,
       hint="Compute each gradient only if ctx.needs_input_grad[i]; return None for the others.")
def only_the_gradients_needed(nb):
    """what backward returns for (dx, dweight, dbias): first with weight frozen, then with x not requiring grad"""
    x, weight, bias = linear_inputs(14)
    frozen = nb.LinearFunction.apply(x, weight.detach(), bias)
    constant_input = nb.LinearFunction.apply(x.detach(), weight, bias)
    dout = torch.ones(2, 3, 5, dtype=torch.float64)
    return [returned(frozen, dout), returned(constant_input, dout)]


@probe("torch_backward/linear_function", points=1,
       hint=("x is needed only for dweight: in forward, save x only if ctx.needs_input_grad[1], "
             "else save None in its place."))
def frozen_weight_keeps_no_input(nb):
    """x requires grad, weight is frozen: does LinearFunction keep x for its backward?"""
    x, weight, bias = linear_inputs(15)
    out = nb.LinearFunction.apply(x, weight.detach(), bias)
    return "the input x" in saved_kinds(out, {"the input x": x})


@probe("torch_backward/linear_function", points=1,
       hint=("gradcheck(LinearFunction.apply, (x, weight, bias)) and with bias None must both be "
             "True."))
def linear_gradcheck(nb):
    x, weight, bias = linear_inputs(16)
    return [gradcheck(nb.LinearFunction, x, weight, bias), gradcheck(nb.LinearFunction, x, weight, None)]


# --- layernorm_function -----------------------------------------------------------------------------

def layernorm_inputs(seed):
    rng = np.random.default_rng(seed)
    x = randn(rng, 2, 3, 8, scale=2.0, shift=3.0)  # mean far from 0, variance far from 1
    return leaf(x), leaf(randn(rng, 8, scale=0.3, shift=1.0)), leaf(randn(rng, 8, scale=0.5))  # weight kept away from 0


@probe("torch_backward/layernorm_function", points=1, **F64,
       hint="out, rstd = layernorm(x, weight, bias); return out.")
def layernorm_values(nb):
    """x (2, 3, 8) seeded normal(20) * 2 + 3, weight (8,) normal * 0.3 + 1, bias (8,) normal * 0.5"""
    return array(nb.LayerNormFunction.apply(*layernorm_inputs(20)))


@probe("torch_backward/layernorm_function", points=2, **F64,
       hint="xhat = (out - bias) / weight; return layernorm_grads(dout, xhat, weight, rstd).")
def layernorm_gradients(nb):
    """x (2, 3, 8) seeded normal(21) * 2 + 3, weight and bias (8,); gradients for dout seeded normal(22)"""
    inputs = layernorm_inputs(21)
    return gradients(nb.LayerNormFunction.apply(*inputs), inputs, seed=22)


@probe("torch_backward/layernorm_function", points=1,
       hint=("ctx.save_for_backward(out, weight, bias, rstd): the output, the parameters and rstd "
             "(B, T); no copy of x or xhat."))
def layernorm_saves_its_output(nb):
    """x (2, 3, 8); what LayerNormFunction.apply(x, weight, bias) keeps for its backward"""
    x, weight, bias = layernorm_inputs(23)
    out = nb.LayerNormFunction.apply(x, weight, bias)
    kinds = saved_kinds(out, {"the output": out, "the input x": x, "weight": weight, "bias": bias})
    return {"saves the output": "the output" in kinds, "saves the input x": "the input x" in kinds,
            "saves weight and bias": "weight" in kinds and "bias" in kinds,
            "new (B, T, C) tensors saved": kinds.count("a new tensor of shape [2, 3, 8]")}


@probe("torch_backward/layernorm_function", points=1,
       hint="gradcheck(LayerNormFunction.apply, (x, weight, bias)) must be True.")
def layernorm_gradcheck(nb):
    return gradcheck(nb.LayerNormFunction, *layernorm_inputs(24))


# --- attention_recompute ----------------------------------------------------------------------------

def qkv_input(seed, B=2, T=5, C=8):
    return leaf(randn(np.random.default_rng(seed), B, T, 3 * C))


@probe("torch_backward/attention_recompute", points=1, **F64,
       hint=("q, k, v = split_heads(qkv, n_head); att = causal_attention_probs(q, k); return "
             "merge_heads(att @ v)."))
def attention_values(nb):
    """qkv (2, 5, 24) seeded normal(30), n_head 2 (HS 4)"""
    return array(nb.AttentionRecomputeFunction.apply(qkv_input(30), 2))


QKV_LAYOUT = ("b", "t", [("part", ("q", "k", "v")), ("head", 2), ("channel", 4)])  # qkv (B, T, 3C) with NH 2, HS 4


@probe("torch_backward/attention_recompute", points=2, **F64, layout=QKV_LAYOUT,
       hint=("backward: att = causal_attention_probs(q, k) again, then attention_grads(split dout,"
             " q, k, v, att), merged back into qkv's layout."))
def attention_gradient(nb):
    """qkv (2, 5, 24) seeded normal(31), n_head 2 (HS 4); dqkv for dout (2, 5, 8) seeded normal(32)"""
    qkv = qkv_input(31)
    return gradients(nb.AttentionRecomputeFunction.apply(qkv, 2), [qkv], seed=32)[0]


@probe("torch_backward/attention_recompute", points=1,
       hint=("ctx.save_for_backward(qkv) and ctx.n_head = n_head: no (B, NH, T, T) tensor "
             "is saved."))
def saves_no_attention_matrix(nb):
    """qkv (1, 6, 12), n_head 2 (T 6, HS 2): does AttentionRecomputeFunction keep a tensor ending in (T, T)?"""
    qkv = qkv_input(33, B=1, T=6, C=4)
    saved = nb.AttentionRecomputeFunction.apply(qkv, 2).grad_fn.saved_tensors
    return any(t is not None and tuple(t.shape[-2:]) == (6, 6) for t in saved)


@probe("torch_backward/attention_recompute", points=1,
       hint=("gradcheck(AttentionRecomputeFunction.apply, (qkv, n_head)) must be True; n_head gets"
             " None."))
def attention_gradcheck(nb):
    return gradcheck(nb.AttentionRecomputeFunction, qkv_input(34, B=2, T=4, C=4), 2)


# --- gelu_linear_backward ---------------------------------------------------------------------------

def gelu_linear_inputs(seed):
    rng = np.random.default_rng(seed)
    return leaf(randn(rng, 2, 3, 6, scale=2.0)), leaf(randn(rng, 6, 4)), leaf(randn(rng, 4))


@probe("torch_backward/gelu_linear_backward", points=2, **F64,
       hint=("h = gelu(pre) recomputed; dh = dout @ weight.T; dweight = h.T @ dout (B, T "
             "flattened); dbias = dout summed; dpre = dh * gelu_derivative(pre)."))
def gelu_linear_gradients(nb):
    """pre (2, 3, 6) seeded normal(40) * 2, weight (6, 4), bias (4,); out and gradients for dout seeded normal(41)"""
    inputs = gelu_linear_inputs(40)
    out = nb.GeluLinearFunction.apply(*inputs)
    return {"out": array(out), "grads": gradients(out, inputs, seed=41)}


@probe("torch_backward/gelu_linear_backward", points=1,
       hint=("ctx.save_for_backward(pre, weight, bias): gelu(pre) is not saved, the backward "
             "recomputes it."))
def keeps_no_hidden_activation(nb):
    """pre (2, 3, 6), weight, bias: what GeluLinearFunction keeps for its backward"""
    pre, weight, bias = gelu_linear_inputs(42)
    kinds = saved_kinds(nb.GeluLinearFunction.apply(pre, weight, bias), {"pre": pre, "weight": weight, "bias": bias})
    # parameters cost nothing (they are alive anyway): only activations count here
    return {"saves pre": "pre" in kinds, "new (B, T, IC) tensors saved": kinds.count("a new tensor of shape [2, 3, 6]")}


@probe("torch_backward/gelu_linear_backward", points=1,
       hint="gradcheck(GeluLinearFunction.apply, (pre, weight, bias)) must be True.")
def gelu_linear_gradcheck(nb):
    return gradcheck(nb.GeluLinearFunction, *gelu_linear_inputs(43))


# --- saved_bytes ------------------------------------------------------------------------------------

def float32_leaf(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)


@probe("torch_backward/saved_bytes", points=2,
       hint=("with torch.autograd.graph.saved_tensors_hooks(pack, unpack): run step(); pack(t) "
             "records t and returns t, unpack(t) returns t."))
def bytes_of_simple_steps(nb):
    """float32 leaves x (3, 4), w (4, 5): saved bytes of torch.tanh(x).sum(), of x @ w, and of torch.sigmoid(x) * x"""
    x, w = float32_leaf(50, 3, 4), float32_leaf(51, 4, 5)
    return [nb.saved_tensor_bytes(lambda: torch.tanh(x).sum()), nb.saved_tensor_bytes(lambda: x @ w),
            nb.saved_tensor_bytes(lambda: torch.sigmoid(x) * x)]


@probe("torch_backward/saved_bytes", points=1,
       hint=("Count each storage once, its whole size: key on t.untyped_storage().data_ptr(), add "
             "t.untyped_storage().nbytes()."))
def one_storage_counted_once(nb):
    """x (6, 4) float32 leaf: saved bytes of x * x, and of a * b with a, b = x.split(2, dim=1) (views of one storage)"""
    x = float32_leaf(52, 6, 4)
    halves = lambda: (lambda a, b: a * b)(*x.split(2, dim=1))
    return [nb.saved_tensor_bytes(lambda: x * x), nb.saved_tensor_bytes(halves)]


@probe("torch_backward/saved_bytes", points=1,
       hint=("Tensors in `alive` (parameters, inputs) exist anyway: put their storages in the "
             "counted set before running step()."))
def alive_tensors_are_left_out(nb):
    """x (3, 4), w (4, 5) float32 leaves: saved bytes of torch.tanh(x @ w) with alive=[w], of x @ w with alive=[x, w]"""
    x, w = float32_leaf(53, 3, 4), float32_leaf(54, 4, 5)
    return [nb.saved_tensor_bytes(lambda: torch.tanh(x @ w), alive=[w]),
            nb.saved_tensor_bytes(lambda: x @ w, alive=[x, w])]


# --- gpt2 -------------------------------------------------------------------------------------------

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


def probed_gradients(model, idx, targets, names=GRADIENTS_PROBED):
    _, loss = model(idx, targets)
    loss.backward()
    params = dict(model.named_parameters())
    return {name: array(params[name].grad) for name in names}


@probe("torch_backward/gpt2", points=2, **F64, uses=FUNCTIONS,
       hint=("EncoderFunction -> blocks -> ln_f -> logits = LinearFunction.apply(x, wte.weight.T, "
             "None) -> SoftmaxCrossEntropyFunction."))
def logits_and_loss(nb):
    model = seeded_model(nb, 60)
    logits, loss = model(*seeded_tokens(61))
    return {"logits": array(logits), "loss": float(loss.detach())}


@probe("torch_backward/gpt2", points=2, **F64, uses=FUNCTIONS,
       hint=("Use the Functions for every layer so that loss.backward() reaches every parameter, "
             "wte twice (embedding and lm head)."))
def parameter_gradients(nb):
    return probed_gradients(seeded_model(nb, 62), *seeded_tokens(63))


@probe("torch_backward/gpt2", points=1, uses=FUNCTIONS,
       hint=("Load the same weights into llmc_core.gpt2.GPT2 (autograd through PyTorch's own "
             "layers): loss and gradients must agree."))
def matches_autograd_gpt2(nb):
    """ExplicitGPT2 and GPT2 with the same seeded weights (float64): same loss, same gradient of every parameter?"""
    model = seeded_model(nb, 64)
    reference = GPT2(PROBE_CONFIG).double()
    reference.load_state_dict(model.state_dict())
    idx, targets = seeded_tokens(65)
    losses = [m(idx, targets)[1] for m in (model, reference)]
    for loss in losses:
        loss.backward()
    same_loss = bool(torch.isclose(losses[0], losses[1], rtol=1e-9, atol=0))
    ours, theirs = dict(model.named_parameters()), dict(reference.named_parameters())
    worst = max(float((ours[name].grad - r.grad).abs().max() / r.grad.abs().max()) for name, r in theirs.items())
    return {"same loss": same_loss, "every gradient within 1e-9 relative": worst < 1e-9}


@probe("torch_backward/gpt2", points=1, uses=FUNCTIONS,
       hint="Without targets, model(idx) returns the logits tensor alone, (B, T, V).")
def logits_without_targets(nb):
    logits = seeded_model(nb, 66)(seeded_tokens(67)[0])
    return {"is_tensor": isinstance(logits, torch.Tensor), "shape": list(logits.shape)}


@probe("torch_backward/gpt2", points=1, uses=FUNCTIONS,
       hint=("T larger than config.block_size has no position embedding: EncoderFunction raises "
             "ValueError; let it through."))
def sequence_longer_than_block_size(nb):
    model = seeded_model(nb, 68)
    return raised(model, torch.zeros(1, PROBE_CONFIG.block_size + 1, dtype=torch.int64))


@probe("torch_backward/gpt2", points=1, **F64,
       hint=("ExplicitGPT2(config, recompute_gelu=True, recompute_attention=True) must give the "
             "same gradients as without recomputation."))
def recomputation_gives_the_same_gradients(nb):
    model = seeded_model(nb, 69, recompute_gelu=True, recompute_attention=True)
    names = ("h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight", "h.1.mlp.c_proj.weight")
    return probed_gradients(model, *seeded_tokens(70), names=names)
