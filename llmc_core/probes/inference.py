"""Probes of lesson 10, inference: the KV cache, cached attention and forward, sampling, generation.

Cached results are compared with full recomputation inside the probes (lesson 02's reference
forward from llmc_core.numpy_gpt2, and the reference PyTorch GPT-2), and returned as well, so the
snapshot of the solution checks them too. Weights are random everywhere (probes.gpt2_forward).
"""
import numpy as np
import torch

from llmc_core import numpy_gpt2 as ref
from llmc_core.exercises import FLOAT32, FLOAT32_SAME_OPS, FLOAT64, probe, raised
from llmc_core.gpt2 import GPT2Config
from llmc_core.probes.gpt2_forward import normal, random_params
from llmc_core.weights import gpt2_from_state_dict

# Which earlier exercises each exercise runs (the forward calls cached attention; generation
# allocates a cache, runs the forward and samples from next_token_probs).
USES = {
    "inference/forward": ("inference/attention",),
    "inference/generate": ("inference/cache", "inference/forward", "inference/sampling"),
}
# The first hint of a failing check names the concept; the probe's own hint comes on request (check(..., hint=2)).
NUDGES = {
    "inference/cache": "One array holds every layer's keys and values for all the positions a "
                       "generation may reach.",
    "inference/attention": "New positions attend to every cached position up to their own: "
                           "store their keys and values first, then read the cache.",
    "inference/forward": "The model's forward on the new positions only, "
                         "each layer's attention reading and extending the cache.",
    "inference/sampling": "Temperature reshapes the distribution; top-k and top-p cut its tail "
                          "before renormalizing.",
    "inference/generate": "Run the prompt once, then one new token at a time, "
                          "each step reusing the cache.",
}
CONFIG = GPT2Config(block_size=16, vocab_size=32, n_layer=2, n_head=2, n_embd=8)
TOLERANCE = 1e-4  # float32: the same sums as full recomputation, in another order


def params32(seed=0):
    return random_params(CONFIG, seed, dtype=np.float32)


def empty_cache(T_max):
    return np.zeros((CONFIG.n_layer, 2, CONFIG.n_head, T_max, CONFIG.head_size), dtype=np.float32)


def cached_logits(nb, params, ids, prefill):
    """Logits (len(ids) - prefill + 1, V) of positions prefill-1..

    A prefill of ids[:prefill], then one learner step per token.
    """
    cache = empty_cache(len(ids))
    rows = [nb.forward_cached(params, ids[:prefill], 0, cache, CONFIG)[-1]]
    rows += [nb.forward_cached(params, ids[t : t + 1], t, cache, CONFIG)[0] for t in range(prefill, len(ids))]
    return np.array(rows)


def torch_logits(params, ids):
    """The reference PyTorch GPT-2 with the same weights on the whole sequence: (T, V)."""
    model = gpt2_from_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, CONFIG).eval()
    with torch.no_grad():
        return model(torch.tensor([ids]))[0].numpy()


# --- cache ---------------------------------------------------------------------------------------

@probe("inference/cache",
       hint="np.zeros((L, 2, NH, T_max, HS), dtype=np.float32), with L, NH, HS from the config.")
def cache_shape(nb):
    cache = nb.new_kv_cache(CONFIG, 10)
    return [list(cache.shape), str(cache.dtype), bool((cache == 0).all())]


@probe("inference/cache",
       hint="T_max must be in 1..config.block_size: raise ValueError otherwise.")
def cache_bad_length(nb):
    return [raised(nb.new_kv_cache, CONFIG, CONFIG.block_size + 1), raised(nb.new_kv_cache, CONFIG, 0)]


# --- attention -----------------------------------------------------------------------------------

@probe("inference/attention", points=3, **FLOAT32_SAME_OPS,
       hint="New position pos+i may attend to cached positions 0..pos+i: "
            "mask scores where s > pos + i, over the keys cache[layer, 0, :, :pos+T].")
def attention_matches_full(nb):
    qkv = normal(40, (7, 3 * CONFIG.n_embd), dtype=np.float32)
    cache = empty_cache(8)
    out = [nb.cached_attention(qkv[:4], cache, 1, 0)]  # prefill of 4 positions into layer 1
    out += [nb.cached_attention(qkv[t : t + 1], cache, 1, t) for t in range(4, 7)]  # then one at a time
    out = np.concatenate(out)  # (7, C)
    full, _ = ref.attention_forward(qkv[None].astype(np.float64), CONFIG.n_head)
    return [out, bool(np.abs(out - full[0]).max() < TOLERANCE)]


@probe("inference/attention", points=2, **FLOAT32_SAME_OPS,
       hint="Write the keys to cache[layer, 0, :, pos:pos+T] and the values to "
            "cache[layer, 1, :, pos:pos+T], each (NH, T, HS); leave the other layers alone.")
def attention_fills_cache(nb):
    qkv = normal(41, (3, 3 * CONFIG.n_embd), dtype=np.float32)
    cache = empty_cache(5)
    nb.cached_attention(qkv, cache, 0, 1)
    return [cache[0], bool((cache[1] == 0).all()), bool((cache[0, :, :, 0] == 0).all())]


@probe("inference/attention",
       hint="pos + T beyond the cache's T_max positions must raise ValueError.")
def attention_overflow(nb):
    return raised(nb.cached_attention, normal(42, (3, 3 * CONFIG.n_embd), dtype=np.float32), empty_cache(4), 0, 2)


# --- forward -------------------------------------------------------------------------------------

@probe("inference/forward", points=3, **FLOAT32,
       hint="Embed with wpe[pos:pos+T], run every block with cached_attention(h, cache, i, pos), "
            "then ln_f and the tied lm head.")
def forward_matches_full_recomputation(nb):
    params, ids = params32(1), list(np.random.default_rng(43).integers(0, CONFIG.vocab_size, 10))
    cached = cached_logits(nb, params, ids, prefill=5)  # (6, V): positions 4..9
    full = ref.gpt2_forward(params, np.array([ids]), CONFIG)[0, 4:]
    return [cached, bool(np.abs(cached - full).max() < TOLERANCE)]


@probe("inference/forward", points=2,
       hint="The cached logits must equal the reference PyTorch GPT-2's on the whole sequence.")
def forward_matches_reference_model(nb):
    params, ids = params32(2), list(np.random.default_rng(44).integers(0, CONFIG.vocab_size, 12))
    cached = cached_logits(nb, params, ids, prefill=3)
    return bool(np.abs(cached - torch_logits(params, ids)[2:]).max() < TOLERANCE)


# --- sampling ------------------------------------------------------------------------------------

@probe("inference/sampling", points=2, **FLOAT64,
       hint="Temperature, then top-k (ties with the k-th stay), then drop each token whose more "
            "likely tokens already hold >= top_p of the probability; renormalize.")
def sampling_cut_distribution(nb):
    logits = normal(45, (12,), scale=2.0)
    return [nb.next_token_probs(logits, 0.8, 6, 0.7), nb.next_token_probs(logits),
            nb.next_token_probs(logits, 1.5, 0, 0.5)]


@probe("inference/sampling", **FLOAT64,
       hint="The most likely token always stays, even when top_p is tiny.")
def sampling_tiny_top_p(nb):
    return nb.next_token_probs(normal(46, (9,)), 1.0, 0, 1e-6)


@probe("inference/sampling",
       hint="Raise ValueError for temperature <= 0, top_k outside 0..V, top_p outside (0, 1].")
def sampling_bad_arguments(nb):
    logits = normal(47, (5,))
    return [raised(nb.next_token_probs, logits, 0.0), raised(nb.next_token_probs, logits, 1.0, 6),
            raised(nb.next_token_probs, logits, 1.0, 0, 0.0), raised(nb.next_token_probs, logits, 1.0, 0, 1.5)]


# --- generate ------------------------------------------------------------------------------------

@probe("inference/generate", points=2,
       hint="Prefill the prompt once, then per step: choose_token, append, "
            "stop or run the new token at the next position.")
def generate_seeded(nb):
    return nb.generate_cached(params32(3), [1, 2, 3], 10, CONFIG, np.random.default_rng(48), 1.0, 8, 0.9)


@probe("inference/generate", points=2,
       hint="Greedy (temperature 0) must pick the argmax of full recomputation at every step.")
def generate_greedy_is_argmax_of_full_recomputation(nb):
    params, ids = params32(6), [5, 6]  # seed 6: greedy text that varies, so a wrong step shows
    out = nb.generate_cached(params, ids, 12, CONFIG, np.random.default_rng(0), temperature=0)
    for _ in range(12):  # oracle: lesson 02's forward on the whole sequence
        ids.append(int(np.argmax(ref.gpt2_forward(params, np.array([ids]), CONFIG)[0, -1])))
    return [out, out == ids]


@probe("inference/generate",
       hint="Stop right after the first token in stop_tokens, keeping it as the last id.")
def generate_stops(nb):
    params = params32(3)
    free = nb.generate_cached(params, [1, 2, 3], 10, CONFIG, np.random.default_rng(48), 1.0, 8, 0.9)
    stop = free[6]  # the fourth new token
    return nb.generate_cached(params, [1, 2, 3], 10, CONFIG, np.random.default_rng(48), 1.0, 8, 0.9,
                              stop_tokens=(stop,))


@probe("inference/generate",
       hint="Raise ValueError for an empty prompt and when len(prompt) + n_new > block_size.")
def generate_bad_requests(nb):
    rng = np.random.default_rng(0)
    return [raised(nb.generate_cached, params32(), [], 3, CONFIG, rng),
            raised(nb.generate_cached, params32(), [1] * 10, 7, CONFIG, rng)]
