"""Probes of lesson 02, GPT-2 in numpy: the forward pass.

Inputs are seeded and scaled so that a wrong implementation cannot hide behind zeros:
layernorm weights and biases are not (1, 0), biases are nonzero, activations are not centered.
"""
import numpy as np

from llmc_core.exercises import FLOAT32, FLOAT64, probe, raised
from llmc_core.gpt2 import GPT2Config

# Which earlier exercises each exercise runs (layers call the layers before them).
USES = {
    "gpt2_forward/attention_loop": ("gpt2_forward/softmax",),
    "gpt2_forward/attention": ("gpt2_forward/softmax",),
    "gpt2_forward/block": ("gpt2_forward/layernorm", "gpt2_forward/matmul", "gpt2_forward/gelu",
                           "gpt2_forward/residual", "gpt2_forward/attention"),
    "gpt2_forward/model": ("gpt2_forward/encoder", "gpt2_forward/layernorm", "gpt2_forward/matmul",
                           "gpt2_forward/block"),
    "gpt2_forward/sampling_probs": ("gpt2_forward/softmax",),
    "gpt2_forward/sample": ("gpt2_forward/sampling_probs",),
}
# The first hint of a failing check names the concept; the probe's own hint (the formula) comes on request.
NUDGES = {
    "gpt2_forward/encoder": "Each position gets its token's embedding plus its position's "
                            "embedding.",
    "gpt2_forward/layernorm": "Layernorm normalizes each position's C channels, "
                              "then scales and shifts them.",
    "gpt2_forward/matmul": "A linear layer: a matrix product plus an optional bias.",
    "gpt2_forward/gelu": "GPT-2 uses the tanh approximation of GELU.",
    "gpt2_forward/residual": "A residual connection adds a branch's output to its input.",
    "gpt2_forward/softmax": "Softmax turns scores into probabilities along the last axis, stably.",
    "gpt2_forward/attention_loop": "Causal self-attention: each position mixes the values of "
                                   "itself and the positions before it.",
    "gpt2_forward/attention": "The same attention as the loop, with all heads and positions in "
                              "batched matrix products.",
    "gpt2_forward/crossentropy": "Cross-entropy is the negative log of the probability given to "
                                 "the right token.",
    "gpt2_forward/block": "A transformer block: two residual branches, each reading a "
                          "layernormed input.",
    "gpt2_forward/model": "The model: embeddings, the blocks, a final layernorm, "
                          "then the tied language-model head.",
    "gpt2_forward/sampling_probs": "Temperature rescales the logits; top-k keeps only the k most "
                                   "likely tokens.",
    "gpt2_forward/sample": "Sampling draws one token from the distribution with a single uniform "
                           "number.",
}
# The model the block and model probes run: small enough to check every number, 2 of everything.
PROBE_CONFIG = GPT2Config(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=8)


def random_params(config, seed, dtype=np.float64):
    """GPT-2 weights with HF names, random everywhere (layernorm weights near 1, biases nonzero)."""
    rng = np.random.default_rng(seed)
    C, V = config.n_embd, config.vocab_size
    shapes = {"wte.weight": (V, C), "wpe.weight": (config.block_size, C)}
    for i in range(config.n_layer):
        shapes |= {
            f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_1.bias": (C,),
            f"h.{i}.attn.c_attn.weight": (C, 3 * C), f"h.{i}.attn.c_attn.bias": (3 * C,),
            f"h.{i}.attn.c_proj.weight": (C, C), f"h.{i}.attn.c_proj.bias": (C,),
            f"h.{i}.ln_2.weight": (C,), f"h.{i}.ln_2.bias": (C,),
            f"h.{i}.mlp.c_fc.weight": (C, 4 * C), f"h.{i}.mlp.c_fc.bias": (4 * C,),
            f"h.{i}.mlp.c_proj.weight": (4 * C, C), f"h.{i}.mlp.c_proj.bias": (C,),
        }
    shapes |= {"ln_f.weight": (C,), "ln_f.bias": (C,)}
    params = {}
    for name, shape in shapes.items():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            value = 1.0 + 0.3 * rng.standard_normal(shape)
        else:
            value = 0.3 * rng.standard_normal(shape)
        params[name] = value.astype(dtype)
    return params


def normal(seed, shape, scale=1.0, shift=0.0, dtype=np.float64):
    return (shift + scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


# --- encoder -------------------------------------------------------------------------------------

@probe("gpt2_forward/encoder", points=2, **FLOAT64,
       hint="out[b, t] = wte[idx[b, t]] + wpe[t]: index wte with the ids, "
            "slice wpe to the first T rows.")
def encoder_random_ids(nb):
    idx = np.random.default_rng(0).integers(0, 10, (2, 5))
    out, _ = nb.encoder_forward(idx, normal(1, (10, 4)), normal(2, (7, 4)))
    return out


@probe("gpt2_forward/encoder",
       hint=("Check idx.dtype with np.issubdtype(idx.dtype, np.integer) and raise TypeError.",))
def encoder_float_ids(nb):
    return raised(nb.encoder_forward, np.zeros((1, 3)), normal(1, (10, 4)), normal(2, (7, 4)))


@probe("gpt2_forward/encoder",
       hint=("T larger than the number of rows of wpe must raise ValueError.",))
def encoder_too_long(nb):
    return raised(nb.encoder_forward, np.zeros((1, 8), dtype=np.int64), normal(1, (10, 4)), normal(2, (7, 4)))


@probe("gpt2_forward/encoder",
       hint=("An id outside 0..V-1 must raise ValueError "
             "(negative ids would silently index from the end).",))
def encoder_id_out_of_range(nb):
    return raised(nb.encoder_forward, np.array([[1, -1, 2]]), normal(1, (10, 4)), normal(2, (7, 4)))


# --- layernorm -----------------------------------------------------------------------------------

@probe("gpt2_forward/layernorm", points=2, **FLOAT64,
       hint="Normalize over the last axis only, with the biased variance (divide by C), "
            "then out = xhat * w + b.")
def layernorm_random(nb):
    out, _ = nb.layernorm_forward(normal(3, (2, 3, 6), scale=2.0, shift=1.5), normal(4, (6,), 0.5, 1.0),
                                  normal(5, (6,)))
    return out


@probe("gpt2_forward/layernorm", **FLOAT64,
       hint="A constant row has variance 0: eps inside the square root keeps it finite, "
            "and the output is b.")
def layernorm_constant_row(nb):
    x = np.full((1, 2, 5), 3.0)
    out, _ = nb.layernorm_forward(x, normal(4, (5,), 0.5, 1.0), normal(5, (5,)))
    return out


@probe("gpt2_forward/layernorm",
       hint=("Keep float32 float32: use Python floats for constants, not float64 numpy scalars.",))
def layernorm_keeps_float32(nb):
    out, _ = nb.layernorm_forward(normal(3, (2, 3, 6), dtype=np.float32), np.ones(6, np.float32),
                                  np.zeros(6, np.float32))
    return str(out.dtype)


# --- matmul --------------------------------------------------------------------------------------

@probe("gpt2_forward/matmul", points=2, **FLOAT64,
       hint="out = x @ w + b; with (B, T, C) @ (C, OC) the leading axes come along.")
def matmul_with_bias(nb):
    out, _ = nb.matmul_forward(normal(6, (2, 3, 4)), normal(7, (4, 5)), normal(8, (5,)))
    return out


@probe("gpt2_forward/matmul", **FLOAT64, hint="b=None means no bias: the lm head has none.")
def matmul_without_bias(nb):
    out, _ = nb.matmul_forward(normal(6, (2, 3, 4)), normal(7, (4, 5)), None)
    return out


@probe("gpt2_forward/matmul",
       hint=("x.shape[-1] must equal w.shape[0]; raise ValueError otherwise.",))
def matmul_shape_mismatch(nb):
    return raised(nb.matmul_forward, normal(6, (2, 3, 4)), normal(7, (5, 5)), None)


# --- gelu ----------------------------------------------------------------------------------------

@probe("gpt2_forward/gelu", points=2, **FLOAT64,
       hint="0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))): the tanh form, not erf.")
def gelu_values(nb):
    out, _ = nb.gelu_forward(np.linspace(-6.0, 6.0, 25))
    return out


@probe("gpt2_forward/gelu",
       hint=("np.sqrt(2 / np.pi) is a float64 scalar and upcasts float32; use math.sqrt.",))
def gelu_keeps_float32(nb):
    out, _ = nb.gelu_forward(np.linspace(-3.0, 3.0, 7, dtype=np.float32))
    return str(out.dtype)


# --- residual ------------------------------------------------------------------------------------

@probe("gpt2_forward/residual", **FLOAT64, hint="The residual is x + y, elementwise.")
def residual_sum(nb):
    out, _ = nb.residual_forward(normal(9, (2, 3, 4)), normal(10, (2, 3, 4)))
    return out


# --- softmax -------------------------------------------------------------------------------------

@probe("gpt2_forward/softmax", points=2, **FLOAT64,
       hint="exp(x - max) / sum(exp(x - max)) along the last axis.")
def softmax_random(nb):
    probs, _ = nb.softmax_forward(normal(11, (2, 3, 7), scale=3.0))
    return probs


@probe("gpt2_forward/softmax", **FLOAT64,
       hint="Subtract the row maximum before exp, or exp(1000) overflows to inf.")
def softmax_large_scores(nb):
    probs, _ = nb.softmax_forward(np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -999.0]]))
    return probs


@probe("gpt2_forward/softmax", **FLOAT64,
       hint="A -inf score must get probability exactly 0 (exp(-inf) = 0).")
def softmax_masked_scores(nb):
    probs, _ = nb.softmax_forward(np.array([[0.5, -np.inf, 1.5, -np.inf]]))
    return probs


# --- attention_loop ------------------------------------------------------------------------------

@probe("gpt2_forward/attention_loop", points=2, **FLOAT64,
       layout=("b", "t", [("head", 2), ("channel", 4)]),
       hint="Scores q_t . k_s / sqrt(HS) for s <= t only; softmax; weighted sum of v_s. "
            "Head h uses channels h*HS..(h+1)*HS-1 of q, k and v.")
def attention_loop_random(nb):
    """qkv (2, 5, 24) seeded normal(12), n_head 2 (HS 4)"""
    return nb.attention_forward_loop(normal(12, (2, 5, 3 * 8)), 2)


# --- attention -----------------------------------------------------------------------------------

@probe("gpt2_forward/attention", points=2, **FLOAT64,
       layout=("b", "t", [("head", 2), ("channel", 4)]),
       hint="Reshape to (B, NH, T, HS) with reshape(B, T, NH, HS).transpose(0, 2, 1, 3); "
            "mask s > t with -inf before the softmax.")
def attention_random(nb):
    """qkv (2, 5, 24) seeded normal(12), n_head 2 (HS 4)"""
    out, _ = nb.attention_forward(normal(12, (2, 5, 3 * 8)), 2)
    return out


@probe("gpt2_forward/attention", **FLOAT64,
       layout={"result['att']": ("b", "head", "query t", "key t")},
       hint="The cache's att is (B, NH, T, T): rows sum to 1, the upper triangle (the future) is "
            "0.")
def attention_weights(nb):
    """qkv (1, 4, 12) seeded normal(13), n_head 2 (HS 2)"""
    _, (q, k, v, att) = nb.attention_forward(normal(13, (1, 4, 3 * 4)), 2)
    return {"q shape": list(q.shape), "att": att}


@probe("gpt2_forward/attention",
       hint="Output at position t must not depend on q, k, v at positions after t: "
            "mask the scores s > t.")
def attention_is_causal(nb):
    qkv = normal(14, (1, 6, 3 * 8))
    changed = qkv.copy()
    changed[:, 3:] = normal(15, (1, 3, 3 * 8))  # rewrite the last three positions
    out, _ = nb.attention_forward(qkv, 2)
    out_changed, _ = nb.attention_forward(changed, 2)
    return {"past unchanged": bool(np.allclose(out[:, :3], out_changed[:, :3], rtol=0, atol=1e-12)),
            "future changed": bool(not np.allclose(out[:, 3:], out_changed[:, 3:]))}


@probe("gpt2_forward/attention",
       hint=("Raise ValueError when the channels of qkv are not 3 * n_head * HS.",))
def attention_bad_heads(nb):
    return raised(nb.attention_forward, normal(12, (1, 2, 3 * 8)), 3)


# --- crossentropy --------------------------------------------------------------------------------

@probe("gpt2_forward/crossentropy", points=2, **FLOAT64,
       hint="losses[b, t] = -log(probs[b, t, targets[b, t]]); np.take_along_axis picks one entry "
            "per row.")
def crossentropy_random(nb):
    logits = normal(16, (2, 3, 5), scale=2.0)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    losses, _ = nb.crossentropy_forward(probs, np.random.default_rng(17).integers(0, 5, (2, 3)))
    return losses


@probe("gpt2_forward/crossentropy", hint=("A target outside 0..V-1 must raise ValueError.",))
def crossentropy_bad_target(nb):
    probs = np.full((1, 2, 4), 0.25)
    return raised(nb.crossentropy_forward, probs, np.array([[0, 4]]))


# --- block ---------------------------------------------------------------------------------------

@probe("gpt2_forward/block", points=3, **FLOAT64,
       hint="x + attn_proj(attention(c_attn(ln_1(x)))), then x + mlp_proj(gelu(c_fc(ln_2(x)))): "
            "each branch reads a layernormed copy.")
def block_random(nb):
    params = random_params(PROBE_CONFIG, seed=18)
    out, _ = nb.block_forward(params, 1, normal(19, (2, 5, PROBE_CONFIG.n_embd)), PROBE_CONFIG)
    return out


# --- model ---------------------------------------------------------------------------------------

@probe("gpt2_forward/model", points=3, **FLOAT64,
       hint="encoder, the L blocks, ln_f, then logits = x @ wte.T (tied lm head, no bias).")
def model_logits(nb):
    idx = np.random.default_rng(20).integers(0, PROBE_CONFIG.vocab_size, (2, 6))
    logits, _ = nb.model_forward(random_params(PROBE_CONFIG, seed=21), idx, PROBE_CONFIG)
    return logits


@probe("gpt2_forward/model", **FLOAT32,
       hint=("gpt2_forward must run in the dtype of the weights: float32 in, "
             "float32 logits out.",))
def model_float32(nb):
    idx = np.random.default_rng(22).integers(0, PROBE_CONFIG.vocab_size, (1, 4))
    logits = nb.gpt2_forward(random_params(PROBE_CONFIG, seed=23, dtype=np.float32), idx, PROBE_CONFIG)
    return {"dtype": str(logits.dtype), "logits": logits.astype(np.float64)}


@probe("gpt2_forward/model", hint=("T larger than config.block_size must raise ValueError.",))
def model_too_long(nb):
    idx = np.zeros((1, PROBE_CONFIG.block_size + 1), dtype=np.int64)
    return raised(nb.model_forward, random_params(PROBE_CONFIG, seed=24), idx, PROBE_CONFIG)


# --- sampling_probs ------------------------------------------------------------------------------

@probe("gpt2_forward/sampling_probs", points=2, **FLOAT64,
       hint="softmax(logits / temperature); with top_k, logits below the k-th largest get "
            "probability 0.")
def sampling_probs_topk(nb):
    logits = normal(25, (12,), scale=2.0)
    return {"t=1": nb.sampling_probs(logits), "t=0.5,k=3": nb.sampling_probs(logits, 0.5, 3),
            "t=2,k=12": nb.sampling_probs(logits, 2.0, 12)}


@probe("gpt2_forward/sampling_probs", **FLOAT64,
       hint="top_k=1 leaves all probability on the largest logit.")
def sampling_probs_top1(nb):
    return nb.sampling_probs(normal(26, (9,)), 1.0, 1)


@probe("gpt2_forward/sampling_probs",
       hint=("temperature <= 0 and top_k outside 1..V raise ValueError.",))
def sampling_probs_bad_arguments(nb):
    logits = normal(27, (5,))
    return [raised(nb.sampling_probs, logits, 0.0), raised(nb.sampling_probs, logits, 1.0, 0),
            raised(nb.sampling_probs, logits, 1.0, 6)]


# --- sample --------------------------------------------------------------------------------------

@probe("gpt2_forward/sample", points=2,
       hint="One u = rng.random() per call; return the first index whose cumulative probability "
            "exceeds u (np.cumsum, np.searchsorted).")
def sample_seeded(nb):
    logits = normal(28, (10,), scale=1.5)
    rng = np.random.default_rng(29)
    return [nb.sample(logits, rng, 0.8, 4) for _ in range(30)]


@probe("gpt2_forward/sample", hint="sample returns a Python int.")
def sample_returns_int(nb):
    return type(nb.sample(normal(30, (6,)), np.random.default_rng(31))).__name__
