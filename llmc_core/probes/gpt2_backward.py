"""Probes of lesson 03, GPT-2 in numpy: the backward pass and training.

The caches come from the reference forward layers (llmc_core.numpy_gpt2), as in the lesson.
Inputs are seeded, in float64, and scaled so that no gradient can hide behind zeros.
"""
import numpy as np

from llmc_core import numpy_gpt2 as ref
from llmc_core.exercises import FLOAT64, probe, raised
from llmc_core.probes.gpt2_forward import PROBE_CONFIG, normal, random_params

# Which earlier exercises each exercise runs (a layer's backward calls the backward of the layers inside it).
USES = {
    "gpt2_backward/layernorm": ("gpt2_backward/layernorm_mean", "gpt2_backward/layernorm_variance"),
    "gpt2_backward/gelu": ("gpt2_backward/gelu_derivative",),
    "gpt2_backward/attention_head": ("gpt2_backward/softmax",),
    "gpt2_backward/attention": ("gpt2_backward/attention_head", "gpt2_backward/softmax"),
    "gpt2_backward/block": ("gpt2_backward/layernorm", "gpt2_backward/matmul", "gpt2_backward/gelu",
                            "gpt2_backward/residual", "gpt2_backward/attention"),
    "gpt2_backward/model": ("gpt2_backward/encoder", "gpt2_backward/layernorm", "gpt2_backward/matmul",
                            "gpt2_backward/crossentropy_softmax", "gpt2_backward/block"),
}
# The first hint of a failing check names the concept; the probe's own hint (the formula) comes on request.
NUDGES = {
    "gpt2_backward/encoder": "Each embedding row gets the gradients of every position that read "
                             "it.",
    "gpt2_backward/layernorm_mean": "Each xc_i depends on x_i directly and on every x_j through "
                                    "the mean: sum the two contributions.",
    "gpt2_backward/layernorm_variance": "xc reaches xhat directly and through rstd, "
                                        "which depends on every xc_j of the row: "
                                        "differentiate rstd first.",
    "gpt2_backward/layernorm": "Chain the steps: dw and db summed over positions, "
                               "dxhat = dout * w, then back through the variance, "
                               "then through the mean.",
    "gpt2_backward/matmul": "The gradients of a matrix product are matrix products with the "
                            "other factor transposed.",
    "gpt2_backward/gelu_derivative": "Product rule on 0.5 * x * (1 + tanh(u)), "
                                     "then the chain rule through tanh and through u(x).",
    "gpt2_backward/gelu": "An elementwise function's backward is dout times its derivative.",
    "gpt2_backward/residual": "An addition passes its gradient unchanged to both inputs.",
    "gpt2_backward/softmax_jacobian": "Quotient rule on exp(x_i) / sum(exp(x)): "
                                      "one case for i == j, one for i != j, both written with p.",
    "gpt2_backward/softmax": "Multiply the Jacobian by dout and sum over i by hand: "
                             "it collapses to an elementwise expression of p and dout.",
    "gpt2_backward/attention_head": "Run one head's forward steps backwards: the weighted sum, "
                                    "the softmax, the scale, the scores' matmul.",
    "gpt2_backward/attention": "Split dout into heads, call attention_head_backward, "
                               "and glue dq, dk, dv back into the layout of qkv.",
    "gpt2_backward/crossentropy_row": "Write the loss as -logits[target] + log(sum(exp(logits))) "
                                      "and differentiate each term.",
    "gpt2_backward/crossentropy_softmax": "Softmax followed by cross-entropy has a famously "
                                          "simple combined gradient.",
    "gpt2_backward/block": "Walk the block backwards; at each residual the gradient splits and "
                           "adds up again.",
    "gpt2_backward/model": "The model's backward runs every layer's backward in reverse order, "
                           "starting from the mean loss.",
    "gpt2_backward/flat_buffer": "One allocation, many views: slices and reshapes share memory.",
    "gpt2_backward/adamw_update": "AdamW keeps running averages of the gradient and its square, "
                                  "corrects their bias, and decays weights separately.",
}
# float32 gradients of a float32 model: FLOAT32's rtol, and an atol below the smallest gradients checked (~1e-4).
FLOAT32_GRADS = {"rtol": 1e-4, "atol": 1e-6}
# Names for the parts of qkv-shaped arrays in mismatch messages: the last axis is q | k | v,
# each NH heads of HS channels.
QKV_PARTS = lambda n_head, head_size: [("part", ("q", "k", "v")), ("head", n_head), ("channel", head_size)]


# --- encoder -------------------------------------------------------------------------------------

@probe("gpt2_backward/encoder", points=2, **FLOAT64,
       hint="dwte gets dout[b, t] in row idx[b, t]: use np.add.at so that repeated ids all "
            "count; dwpe[t] sums dout[:, t].")
def encoder_repeated_ids(nb):
    idx = np.array([[1, 3, 1, 1], [3, 0, 2, 1]])  # ids 1 and 3 repeat
    _, cache = ref.encoder_forward(idx, normal(1, (5, 3)), normal(2, (6, 3)))
    dwte, dwpe = nb.encoder_backward(normal(3, (2, 4, 3)), cache)
    return {"dwte": dwte, "dwpe": dwpe}


# --- layernorm_mean ------------------------------------------------------------------------------

@probe("gpt2_backward/layernorm_mean", points=2, **FLOAT64,
       hint="dx = dxc - mean(dxc) over the last axis.")
def layernorm_mean_grads(nb):
    """dxc (2, 3, 6) seeded normal(40)"""
    return nb.layernorm_mean_backward(normal(40, (2, 3, 6)))


# --- layernorm_variance --------------------------------------------------------------------------

@probe("gpt2_backward/layernorm_variance", points=2, **FLOAT64,
       hint="d rstd / d xc_j = -rstd**3 * xc_j / C, so dxc = rstd * "
            "(dxhat - xhat * mean(dxhat * xhat)) over the last axis.")
def layernorm_variance_grads(nb):
    """xc (2, 3, 6) seeded normal(41) * 2, xhat and rstd from it (eps 1e-5), dxhat seeded normal(42)"""
    xc = normal(41, (2, 3, 6), 2.0)
    rstd = 1.0 / np.sqrt((xc**2).mean(axis=-1, keepdims=True) + 1e-5)
    return nb.layernorm_variance_backward(normal(42, (2, 3, 6)), xc * rstd, rstd)


# --- layernorm -----------------------------------------------------------------------------------

@probe("gpt2_backward/layernorm", points=3, **FLOAT64,
       hint="dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = dout * "
            "w; means over C.")
def layernorm_grads(nb):
    """x (2, 3, 6) seeded normal(4) * 2 + 1, w and b (6,), dout (2, 3, 6) seeded normal(7)"""
    _, cache = ref.layernorm_forward(normal(4, (2, 3, 6), 2.0, 1.0), normal(5, (6,), 0.5, 1.0), normal(6, (6,)))
    dx, dw, db = nb.layernorm_backward(normal(7, (2, 3, 6)), cache)
    return {"dx": dx, "dw": dw, "db": db}


# --- matmul --------------------------------------------------------------------------------------

@probe("gpt2_backward/matmul", points=2, **FLOAT64,
       hint="dx = dout @ w.T; dw = x.T @ dout with the B*T positions flattened into rows; "
            "db = dout summed over positions.")
def matmul_grads(nb):
    _, cache = ref.matmul_forward(normal(8, (2, 3, 4)), normal(9, (4, 5)), normal(10, (5,)))
    dx, dw, db = nb.matmul_backward(normal(11, (2, 3, 5)), cache)
    return {"dx": dx, "dw": dw, "db": db}


# --- gelu_derivative -----------------------------------------------------------------------------

@probe("gpt2_backward/gelu_derivative", points=2, **FLOAT64,
       hint="gelu'(x) = 0.5 * (1 + tanh(u)) + 0.5 * x * (1 - tanh(u)**2) * GELU_SCALE * "
            "(1 + 3 * 0.044715 * x**2).")
def gelu_derivative_values(nb):
    """x = np.linspace(-5, 5, 21)"""
    return nb.gelu_derivative(np.linspace(-5.0, 5.0, 21))


# --- gelu ----------------------------------------------------------------------------------------

@probe("gpt2_backward/gelu", points=2, **FLOAT64,
       hint="Product rule on 0.5 * x * (1 + tanh(u)), chain rule through tanh (1 - tanh^2) and u "
            "= sqrt(2/pi) * (x + 0.044715 x^3).")
def gelu_grads(nb):
    x = np.linspace(-5.0, 5.0, 21)
    _, cache = ref.gelu_forward(x)
    return nb.gelu_backward(normal(12, (21,)), cache)


# --- residual ------------------------------------------------------------------------------------

@probe("gpt2_backward/residual", **FLOAT64, hint="Both inputs of x + y get the whole of dout.")
def residual_grads(nb):
    dout = normal(13, (2, 3, 4))
    dx, dy = nb.residual_backward(dout, None)
    return {"dx": dx, "dy": dy}


# --- softmax_jacobian ----------------------------------------------------------------------------

@probe("gpt2_backward/softmax_jacobian", points=2, **FLOAT64,
       hint="J[i, j] = p_i * (delta_ij - p_j): np.diag(p) - np.outer(p, p).")
def softmax_jacobian_values(nb):
    """p = softmax of 5 scores seeded normal(43) * 2"""
    probs, _ = ref.softmax_forward(normal(43, (5,), 2.0))
    return nb.softmax_jacobian(probs)


# --- softmax -------------------------------------------------------------------------------------

@probe("gpt2_backward/softmax", points=2, **FLOAT64,
       hint="dx = probs * (dout - sum(dout * probs)) along the last axis.")
def softmax_grads(nb):
    """scores (2, 3, 5) seeded normal(14) * 2, dout (2, 3, 5) seeded normal(15)"""
    _, cache = ref.softmax_forward(normal(14, (2, 3, 5), 2.0))
    return nb.softmax_backward(normal(15, (2, 3, 5)), cache)


@probe("gpt2_backward/softmax", **FLOAT64,
       hint="A masked entry (probability 0) must get gradient 0.")
def softmax_masked_grads(nb):
    _, cache = ref.softmax_forward(np.array([[0.3, -np.inf, 1.2, 0.5]]))
    return nb.softmax_backward(np.array([[1.0, 5.0, -2.0, 0.5]]), cache)


# --- attention_head ------------------------------------------------------------------------------

@probe("gpt2_backward/attention_head", points=3, **FLOAT64,
       layout={f"result[{name!r}]": ("b", "t", "channel") for name in ("dq", "dk", "dv")},
       hint="dv = att^T @ dout, datt = dout @ v^T, ds = softmax_backward(datt, att) / sqrt(HS), "
            "dq = ds @ k, dk = ds^T @ q (transposes on the last two axes).")
def attention_head_grads(nb):
    """q, k, v (2, 5, 4) from attention_forward on qkv (2, 5, 12) seeded normal(44), one head; dout seeded normal(45)"""
    _, (q, k, v, att) = ref.attention_forward(normal(44, (2, 5, 3 * 4)), 1)
    dq, dk, dv = nb.attention_head_backward(normal(45, (2, 5, 4)), q[:, 0], k[:, 0], v[:, 0], att[:, 0])
    return {"dq": dq, "dk": dk, "dv": dv}


# --- attention -----------------------------------------------------------------------------------

@probe("gpt2_backward/attention", points=3, **FLOAT64, layout=("b", "t", QKV_PARTS(2, 4)),
       hint="dv = att^T @ dout, datt = dout @ v^T, dpreatt = softmax_backward(datt, att) / "
            "sqrt(HS), dq = dpreatt @ k, dk = dpreatt^T @ q; then back to (B, T, 3C).")
def attention_grads(nb):
    """qkv (2, 5, 24) seeded normal(16), n_head 2 (HS 4); dout (2, 5, 8) seeded normal(17)"""
    _, cache = ref.attention_forward(normal(16, (2, 5, 3 * 8)), 2)
    return nb.attention_backward(normal(17, (2, 5, 8)), cache)


@probe("gpt2_backward/attention", **FLOAT64,
       layout={"result['past gradient']": ("t", QKV_PARTS(2, 2))},
       hint="A gradient at position t only flows to positions s <= t: the masked weights are 0.")
def attention_grads_stay_in_the_past(nb):
    """qkv (1, 6, 12) seeded normal(18), n_head 2 (HS 2); dout zero except at position 2"""
    _, cache = ref.attention_forward(normal(18, (1, 6, 3 * 4)), 2)
    dout = np.zeros((1, 6, 4))
    dout[0, 2] = normal(19, (4,))  # only position 2 has a gradient
    dqkv = nb.attention_backward(dout, cache)
    return {"future gradient is zero": bool(np.all(dqkv[0, 3:] == 0)), "past gradient": dqkv[0, :3]}


# --- crossentropy_row ----------------------------------------------------------------------------

@probe("gpt2_backward/crossentropy_row", points=2, **FLOAT64,
       hint="dlogits = softmax(logits) - onehot(target).")
def crossentropy_row_grads(nb):
    """logits (7,) seeded normal(46) * 2, target 4"""
    return nb.crossentropy_row_grad(normal(46, (7,), 2.0), 4)


@probe("gpt2_backward/crossentropy_row",
       hint=("Compute on a copy or a new array: the logits passed in must not change.",))
def crossentropy_row_keeps_logits(nb):
    logits = normal(47, (5,))
    before = logits.copy()
    nb.crossentropy_row_grad(logits, 0)
    return bool(np.array_equal(logits, before))


# --- crossentropy_softmax ------------------------------------------------------------------------

@probe("gpt2_backward/crossentropy_softmax", points=2, **FLOAT64,
       hint="dlogits = dlosses[..., None] * (probs - onehot(targets)).")
def crossentropy_softmax_grads(nb):
    probs, _ = ref.softmax_forward(normal(20, (2, 3, 6), 2.0))
    _, cache = ref.crossentropy_forward(probs, np.random.default_rng(21).integers(0, 6, (2, 3)))
    return nb.crossentropy_softmax_backward(normal(22, (2, 3)), cache)


# --- block ---------------------------------------------------------------------------------------

@probe("gpt2_backward/block", points=3, **FLOAT64,
       layout={"result['dx']": ("b", "t", "channel"),
               "result['h.1.attn.c_attn.weight']": ("in", QKV_PARTS(2, 4)),
               "result['h.1.attn.c_attn.bias']": (QKV_PARTS(2, 4),)},
       hint="Reverse block_forward's order; at each residual, the gradient goes both ways and "
            "adds up where the paths meet.")
def block_grads(nb):
    """block 1 of the probe model (C 8, 2 heads), x (2, 4, 8) seeded normal(24), dout seeded normal(25)"""
    params = random_params(PROBE_CONFIG, seed=23)
    _, cache = ref.block_forward(params, 1, normal(24, (2, 4, PROBE_CONFIG.n_embd)), PROBE_CONFIG)
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    dx = nb.block_backward(normal(25, (2, 4, PROBE_CONFIG.n_embd)), cache, 1, grads)
    return {"dx": dx, **{name: g for name, g in grads.items() if name.startswith("h.1.")}}


@probe("gpt2_backward/block", **FLOAT64,
       hint="block_backward adds into grads with +=: existing values must stay.")
def block_accumulates(nb):
    params = random_params(PROBE_CONFIG, seed=26)
    _, cache = ref.block_forward(params, 0, normal(27, (1, 3, PROBE_CONFIG.n_embd)), PROBE_CONFIG)
    grads = {name: np.ones_like(p) for name, p in params.items()}
    nb.block_backward(normal(28, (1, 3, PROBE_CONFIG.n_embd)), cache, 0, grads)
    return grads["h.0.ln_2.bias"]


# --- model ---------------------------------------------------------------------------------------

def model_inputs(seed, shape=(2, 5)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, PROBE_CONFIG.vocab_size, shape), rng.integers(0, PROBE_CONFIG.vocab_size, shape)


@probe("gpt2_backward/model", points=2, **FLOAT64,
       hint="The loss is the mean of the B*T per-position cross-entropies of softmax(logits).")
def model_loss(nb):
    idx, targets = model_inputs(29)
    loss, _ = nb.gpt2_loss_and_grads(random_params(PROBE_CONFIG, seed=30), idx, targets, PROBE_CONFIG)
    return float(loss)


@probe("gpt2_backward/model", points=4, **FLOAT64,
       layout={"result['h.0.attn.c_attn.weight']": ("in", QKV_PARTS(2, 4))},
       hint="dlosses = 1 / (B*T); then the fused softmax/cross-entropy, "
            "the lm head (its dw transposed into wte), ln_f, the blocks in reverse, "
            "the encoder (into wte again).")
def model_grads(nb):
    """the probe model (2 layers, C 8, 2 heads, V 32), idx and targets (2, 5) seeded 31, params seeded 32"""
    idx, targets = model_inputs(31)
    _, grads = nb.gpt2_loss_and_grads(random_params(PROBE_CONFIG, seed=32), idx, targets, PROBE_CONFIG)
    return {name: grads[name] for name in ("wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.1.mlp.c_fc.bias",
                                           "ln_f.weight", "ln_f.bias")}


@probe("gpt2_backward/model", **FLOAT32_GRADS,
       hint="With a grads dict given, add into it (+=) and return it.")
def model_accumulates(nb):
    idx, targets = model_inputs(33, (1, 4))
    params = random_params(PROBE_CONFIG, seed=34, dtype=np.float32)
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    nb.gpt2_loss_and_grads(params, idx, targets, PROBE_CONFIG, grads)
    _, returned = nb.gpt2_loss_and_grads(params, idx, targets, PROBE_CONFIG, grads)
    return {"same dict": returned is grads, "dtype": str(grads["wte.weight"].dtype),
            "h.0.ln_1.weight": grads["h.0.ln_1.weight"].astype(np.float64)}


@probe("gpt2_backward/model",
       hint=("targets must have the shape of idx: raise ValueError otherwise.",))
def model_target_shape(nb):
    idx, targets = model_inputs(35)
    return raised(nb.gpt2_loss_and_grads, random_params(PROBE_CONFIG, seed=36), idx, targets[:, :-1], PROBE_CONFIG)


# --- flat_buffer ---------------------------------------------------------------------------------

@probe("gpt2_backward/flat_buffer", points=2, **FLOAT64,
       hint="Allocate one np.zeros of the total size; each view is "
            "flat[offset:offset + size].reshape(shape), in the dict's order.")
def flat_buffer_layout(nb):
    flat, views = nb.flat_buffer({"a": (2, 3), "b": (4,), "c": (1, 2, 2)}, np.float64)
    for i, name in enumerate(("a", "b", "c")):
        views[name][...] = np.arange(views[name].size).reshape(views[name].shape) + 10 * (i + 1)
    return {"flat": flat, "shapes": {name: list(v.shape) for name, v in views.items()}}


@probe("gpt2_backward/flat_buffer", **FLOAT64,
       hint="Views must share the flat array's memory (slicing and reshape do; copies do not); "
            "default dtype float32.")
def flat_buffer_shares_memory(nb):
    flat, views = nb.flat_buffer({"w": (3, 3), "b": (3,)})
    flat.fill(0.0)
    views["b"] += 1.0
    return {"dtype": str(flat.dtype), "shares": [bool(np.shares_memory(flat, v)) for v in views.values()],
            "sum": float(flat.sum())}


# --- adamw_update --------------------------------------------------------------------------------

@probe("gpt2_backward/adamw_update", points=3, **FLOAT64,
       hint="m and v first, then bias-correct with 1 - beta**step, then p -= lr * "
            "(m_hat / (sqrt(v_hat) + eps) + weight_decay * p); all in place.")
def adamw_three_steps(nb):
    param, m, v = normal(37, (12,)), np.zeros(12), np.zeros(12)
    for step in (1, 2, 3):
        nb.adamw_update(param, normal(38 + step, (12,)), m, v, step, lr=0.1, weight_decay=0.5)
    return {"param": param, "m": m, "v": v}


@probe("gpt2_backward/adamw_update", **FLOAT64,
       hint="The first step's bias correction makes the update lr * sign(g) in size "
            "(for eps small).")
def adamw_first_step(nb):
    param = np.zeros(6)
    nb.adamw_update(param, np.array([1e-3, -2.0, 5.0, -1e-4, 0.3, 0.0]), np.zeros(6), np.zeros(6), 1, lr=0.01)
    return param


@probe("gpt2_backward/adamw_update", hint=("step counts from 1; step 0 must raise ValueError.",))
def adamw_step_zero(nb):
    return raised(nb.adamw_update, np.zeros(2), np.ones(2), np.zeros(2), np.zeros(2), 0, 0.1)
