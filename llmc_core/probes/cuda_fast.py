"""Probes of lesson 07, fast CUDA kernels: matmul, attention, the classifier, AdamW, the encoder, GPT-2.

As in lesson 06 (whose helpers these probes share): small seeded float32 inputs whose sizes are
not multiples of the block or tile sizes, values far from 0 and 1, tolerances of a few ulps, and
race exposure on the CPU emulator for kernels with barriers. Performance probes judge one launch's
counters on the CPU emulator against limits, as in lesson 06.
"""
import numpy as np
import torch

from llmc_core.cuda import backend_name
from llmc_core.exercises import FLOAT32, probe
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.probes.cuda import counters, dev, host, judged, measures_speed, normal, races_exposed

KERNELS = ("cuda_fast/matmul_blocked", "cuda_fast/attention_forward", "cuda_fast/attention_backward",
           "cuda_fast/classifier_fused", "cuda_fast/encoder_forward", "cuda_fast/encoder_backward_deterministic")
# Which earlier exercises each exercise runs: KernelGPT2's Functions call these launchers (GELU, LayerNorm and
# softmax come from lesson 06's shipped solution, so they are no dependency). Probes below say more precisely.
USES = {"cuda_fast/gpt2": KERNELS + ("cuda_fast/adamw_update",)}
# The first hint of a failing check names the concept; the probe's own hint (formula, API) comes with hint=2.
NUDGES = {
    "cuda_fast/matmul_naive": "One thread per output: the dot product of a row of inp with a "
                              "column of weight, plus the bias.",
    "cuda_fast/matmul_tiled": "The block stages tiles of inp and weight in shared memory; "
                              "barriers keep threads from reading a tile before it is complete "
                              "or after it is replaced.",
    "cuda_fast/matmul_blocked": "Each thread keeps a block of outputs in registers and feeds it, "
                                "per step along C, from a few values of each tile.",
    "cuda_fast/attention_forward": "Scores are scaled dot products of a query with each earlier "
                                   "key (the future is masked); the output is the "
                                   "softmax-weighted sum of values.",
    "cuda_fast/attention_fused": "An online softmax over the keys: a running max, "
                                 "sum and weighted sum of values, rescaled when the max grows.",
    "cuda_fast/attention_backward": "Backward through values, softmax and scores in turn; "
                                    "each gradient sums over the time steps that used its input.",
    "cuda_fast/classifier_fused": "loss = logsumexp of the row - the target's logit; "
                                  "the gradient is softmax minus the one-hot target, "
                                  "scaled by dloss.",
    "cuda_fast/adamw_update": "Two running moments of the gradient, each bias-corrected, "
                              "then a step with decoupled weight decay.",
    "cuda_fast/encoder_forward": "A gather: the token's row of wte plus the position's row of "
                                 "wpe.",
    "cuda_fast/encoder_backward": "A scatter: threads of a repeated token add into the same "
                                  "address.",
    "cuda_fast/encoder_backward_deterministic": "A fixed order: one thread per output sums its "
                                                "inputs in a fixed sequence, no atomics.",
    "cuda_fast/gpt2": "The reference GPT-2's forward, each layer through its Function.",
}
# A whole GPT-2 forward and backward through ~20 float32 kernels: rounding differences compound
# layer by layer, so 10x FLOAT32's rtol; gradients as small as 1e-4 keep a tight atol.
KERNEL_GPT2 = {"rtol": 1e-3, "atol": 1e-6}
MATRIX = ("row", "column")
HEADS = lambda n_head, head_size: [("head", n_head), ("channel", head_size)]  # C channels as NH heads of HS
EMBEDDINGS = {"result['dwte']": ("token", "channel"), "result['dwpe']": ("position", "channel")}


def summary(a):
    """A large 2-D result as row sums, column sums and its top-left corner: any wrong element moves a sum."""
    a = host(a)
    return {"shape": list(a.shape), "row_sums": a.sum(axis=1), "col_sums": a.sum(axis=0), "corner": a[:8, :8]}


# --- matmul_naive --------------------------------------------------------------------------------

def matmul_inputs(seed, N, C, OC):
    return normal(seed, N, C), normal(seed + 1, C, OC), normal(seed + 2, OC, shift=1.0)


@probe("cuda_fast/matmul_naive", points=2, **FLOAT32, layout=MATRIX,
       hint="out[row, col] = bias[col] + sum over k of inp[row * C + k] * weight[k * OC + col]; "
            "check row < N and col < OC.")
def matmul_naive_values(nb):
    inp, w, b = matmul_inputs(40, 19, 37, 45)
    return host(nb.matmul_naive(dev(inp), dev(w), dev(b)))


# --- matmul_tiled --------------------------------------------------------------------------------

@probe("cuda_fast/matmul_tiled", points=2, **FLOAT32, layout=MATRIX,
       hint="Load one element of each 16 x 16 tile per thread (0 outside), __syncthreads, "
            "16 multiply-adds, __syncthreads.")
def matmul_tiled_values(nb):
    inp, w, b = matmul_inputs(41, 19, 37, 45)
    return host(nb.matmul_tiled(dev(inp), dev(w), dev(b)))


@probe("cuda_fast/matmul_tiled", points=1, **FLOAT32, layout=MATRIX,
       hint=("Threads here run in a random order between barriers: the tile must be complete "
             "before anyone reads it, and read by all before it is overwritten "
             "(two __syncthreads per step).",))
def matmul_tiled_barriers(nb):
    inp, w, b = matmul_inputs(42, 33, 40, 20)
    with races_exposed(5):
        return host(nb.matmul_tiled(dev(inp), dev(w), dev(b)))


def matmul_counters(nb, name, M, K, N, grid, block):
    """The profile of one launch of the learner's matmul kernel `name` on inp (M, K) @ weight (K, N) + bias."""
    inp, w, b = matmul_inputs(45, M, K, N)
    args = (np.empty((M, N), np.float32), inp, w, b, np.int32(M), np.int32(K), np.int32(N))
    return counters(getattr(nb, f"{name}_source")(), name, grid, block, args, ("out", "inp", "weight", "bias"))


@probe("cuda_fast/matmul_tiled", points=1,
       hint=("Speed, not correctness: a tile loaded once should serve every thread of the block "
             "that needs it.",
             "Each element of a tile, loaded once from global memory by one thread, "
             "must serve all 16 threads that need it: a thread reads global memory once per "
             "tile step, and the multiply-adds read the tiles."))
@measures_speed
def matmul_tiled_traffic(nb):
    """64 x 64 @ 64 x 64, 4 x 4 blocks of 16 x 16; limits: inp, weight bytes asked for <= 1.05/16 of the naive kernel's,
    >= 90% coalesced, no bank conflicts"""
    n = 64
    prof = matmul_counters(nb, "matmul_tiled", n, n, n, (n // 16, n // 16), (16, 16))
    naive = 4 * n ** 3  # bytes the naive kernel asks for, from each of inp and weight
    return judged(prof, at_most={"arrays.inp.load_bytes": 1.05 * naive / 16,
                                 "arrays.weight.load_bytes": 1.05 * naive / 16, "shared.bank_conflicts": 0},
                  at_least={"arrays.inp.load_efficiency": 0.9, "arrays.weight.load_efficiency": 0.9})


# --- matmul_blocked ------------------------------------------------------------------------------

@probe("cuda_fast/matmul_blocked", points=2, **FLOAT32, layout=MATRIX,
       hint="Each thread accumulates its 8 x 8 outputs in registers: per k, "
            "8 values of inp_tile[k] (rows ty*4.., 64+ty*4..) times 8 of weight_tile[k] "
            "(columns tx*4.., 64+tx*4..).")
def matmul_blocked_values(nb):
    inp, w, b = matmul_inputs(43, 19, 37, 45)
    return host(nb.matmul_blocked(dev(inp), dev(w), dev(b)))


@probe("cuda_fast/matmul_blocked", points=1, **FLOAT32,
       hint=("N = 130 and OC = 140 need 2 x 2 blocks of 128 x 128, most of the outer ones out "
             "of range: load 0 there and skip the stores.",))
def matmul_blocked_several_blocks(nb):
    inp, w, b = matmul_inputs(44, 130, 20, 140)
    with races_exposed(7):
        return summary(nb.matmul_blocked(dev(inp), dev(w), dev(b)))


@probe("cuda_fast/matmul_blocked", points=1,
       hint=("Speed, not correctness: each value loaded is not yet reused enough; "
             "see which memory is read too often.",
             "Per step k, a thread reads 8 values of each tile into registers "
             "(as float4 pairs at ty * 4 and 64 + ty * 4, tx * 4 and 64 + tx * 4) and does 64 "
             "multiply-adds from them: one shared byte per multiply-add, "
             "neighbouring threads at neighbouring addresses."))
@measures_speed
def matmul_blocked_traffic(nb):
    """128 x 32 @ 32 x 128, one block of 256; limits: inp, weight bytes <= 1.05/128 of the naive kernel's,
    shared bytes <= 1.05 per multiply-add, no bank conflicts"""
    M, K, N = 128, 32, 128
    prof = matmul_counters(nb, "matmul_blocked", M, K, N, (1, 1), (256,))
    naive = 4 * M * K * N
    return judged(prof, at_most={"arrays.inp.load_bytes": 1.05 * naive / 128,
                                 "arrays.weight.load_bytes": 1.05 * naive / 128,
                                 "shared.load_bytes": 1.05 * M * K * N, "shared.bank_conflicts": 0},
                  at_least={"arrays.inp.load_efficiency": 0.9, "arrays.weight.load_efficiency": 0.9})


# --- attention_forward ---------------------------------------------------------------------------

def qkv_input(seed, B, T, C):
    return normal(seed, B, T, 3 * C, scale=1.5)


@probe("cuda_fast/attention_forward", points=2, **FLOAT32,
       layout={"result['out']": ("b", "t", HEADS(3, 8)), "result['att']": ("b", "head", "query t", "key t")},
       hint="preatt = q.k / sqrtf(HS) for t2 <= t and -inf above the diagonal; "
            "out[b, t, c] = sum over t2 <= t of att * v.")
def attention_composed(nb):
    out, att = nb.attention_forward(dev(qkv_input(50, 2, 7, 24)), 3)
    return {"out": host(out), "att": host(att)}


# --- attention_fused -----------------------------------------------------------------------------

@probe("cuda_fast/attention_fused", points=2, **FLOAT32, layout=("b", "t", HEADS(3, 8)),
       hint="Per key t2: score = q.k / sqrt(HS) (a warp sum); m_new = max(m, score); "
            "rescale s and acc by expf(m - m_new); add p = expf(score - m_new).")
def attention_fused_values(nb):
    return host(nb.attention_fused(dev(qkv_input(51, 2, 7, 24)), 3))


@probe("cuda_fast/attention_fused", points=1, **FLOAT32, layout=("b", "t", HEADS(2, 40)),
       hint=("HS = 40 > 32: lane l owns channels l and l + 32 (when l + 32 < HS).",))
def attention_fused_wide_heads(nb):
    return host(nb.attention_fused(dev(qkv_input(52, 1, 5, 80)), 2))


@probe("cuda_fast/attention_fused", points=1,
       hint=("Speed, not correctness: the memory traffic is more than one warp per row and head "
             "needs.",
             "A warp per query row and head: lanes read neighbouring channels of q, "
             "k and v (coalesced), each key and value once per query, "
             "and nothing but out is written (no (T, T) scores)."))
@measures_speed
def attention_fused_traffic(nb):
    """qkv (2, 16, 384), 2 heads of 64, 16 blocks of 4 warps;
    limits: qkv bytes <= 1.05 x (q once, k and v once per pair), only out written, >= 90% coalesced"""
    B, T, C, NH = 2, 16, 128, 2
    qkv = qkv_input(55, B, T, C)
    args = (np.empty((B, T, C), np.float32), qkv, np.int32(B), np.int32(T), np.int32(C), np.int32(NH))
    prof = counters(nb.attention_fused_source(), "attention_fused", (B * T * NH // 4,), (128,), args, ("out", "qkv"))
    pairs = B * NH * T * (T + 1) // 2  # (query, key) pairs with key <= query
    needed = 4 * (B * T * C + 2 * pairs * C // NH)
    return judged(prof, at_most={"arrays.qkv.load_bytes": 1.05 * needed, "global.store_bytes": 1.05 * 4 * B * T * C},
                  at_least={"arrays.qkv.load_efficiency": 0.9, "arrays.out.store_efficiency": 0.9})


# --- attention_backward --------------------------------------------------------------------------

@probe("cuda_fast/attention_backward", points=3, **FLOAT32,
       layout=("b", "t", [("part", ("q", "k", "v"))] + HEADS(3, 8)),
       hint="datt = dout . v; dpreatt = att (datt - sum(datt att)) / sqrt(HS); dq = dpreatt k, "
            "dk = dpreatt^T q, dv = att^T dout.")
def attention_gradients(nb):
    qkv = dev(qkv_input(53, 2, 6, 24))
    dout = dev(normal(54, 2, 6, 24))
    # att from PyTorch, so this probe needs only the backward kernels
    q, k, _ = torch.from_numpy(host(qkv)).double().split(24, dim=2)
    q, k = (t.view(2, 6, 3, 8).transpose(1, 2) for t in (q, k))
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)
    scores = (q @ k.transpose(-2, -1) / np.sqrt(8)).masked_fill(causal, float("-inf"))
    att = dev(torch.softmax(scores, dim=-1).numpy())
    return host(nb.attention_backward(dout, qkv, att))


# --- classifier_fused ----------------------------------------------------------------------------

def classifier_inputs(seed, N, V, Vp):
    logits = normal(seed, N, Vp, scale=20.0)
    targets = np.random.default_rng(seed + 1).integers(0, V, N).astype(np.int32)
    targets[0] = V - 1  # the last real column
    return logits, targets


@probe("cuda_fast/classifier_fused", points=2, **FLOAT32, layout={"result['dlogits']": MATRIX},
       hint="losses = lse - logits[target] with lse = m + logf(s) from an online pass; "
            "dlogits = (expf(x - lse) - [i == target]) dloss, 0 for i >= V.")
def classifier_losses_and_gradients(nb):
    logits, targets = classifier_inputs(60, 6, 50, 64)
    losses, dlogits = nb.classifier_fused(dev(logits), dev(targets, np.int32), V=50)
    return {"losses": host(losses), "dlogits": host(dlogits)}


@probe("cuda_fast/classifier_fused", points=1, **FLOAT32,
       hint=("With 8 warps, every warp's (max, sum) must be merged through shared memory after "
             "a __syncthreads.",))
def classifier_many_warps(nb):
    logits, targets = classifier_inputs(61, 3, 600, 640)
    with races_exposed(9):
        losses, dlogits = nb.classifier_fused(dev(logits), dev(targets, np.int32), V=600, dloss=0.5, block_size=256)
    return {"losses": host(losses), "dlogits_row_sums": host(dlogits).sum(axis=1), "dlogits": host(dlogits)[:, ::5]}


@probe("cuda_fast/classifier_fused", points=1, **FLOAT32, layout={"result['dlogits']": MATRIX},
       hint=("In place (dlogits is logits): read logits[target] before any thread writes.",))
def classifier_in_place(nb):
    logits, targets = classifier_inputs(62, 4, 100, 128)
    with races_exposed(11):
        losses, dlogits = nb.classifier_fused(dev(logits), dev(targets, np.int32), V=100, in_place=True, block_size=64)
    return {"losses": host(losses), "dlogits": host(dlogits)}


@probe("cuda_fast/classifier_fused", points=1,
       hint=("Speed, not correctness: the logits are read more often (or less coalesced) than a "
             "fused classifier needs.",
             "Two passes over a row: one online pass for (max, sum), one that writes dlogits; "
             "threads of a warp take neighbouring columns, and the probabilities are never "
             "stored and read back."))
@measures_speed
def classifier_fused_traffic(nb):
    """logits (8, 1024), V 1000, a block of 256 per row; limits: logits sectors <= 2.1 x N Vp / 8 (read twice),
    dlogits written once and never read"""
    N, V, Vp = 8, 1000, 1024
    logits, targets = classifier_inputs(63, N, V, Vp)
    args = (np.empty_like(logits), np.empty(N, np.float32), logits, targets, np.float32(1 / N),
            np.int32(N), np.int32(V), np.int32(Vp))
    prof = counters(nb.classifier_fused_source(), "classifier_fused", (N,), (256,), args,
                    ("dlogits", "losses", "logits", "targets"))
    sectors = N * Vp * 4 / 32
    return judged(prof, at_most={"arrays.logits.load_sectors": 2.1 * sectors,
                                 "arrays.dlogits.store_sectors": 1.05 * sectors, "arrays.dlogits.load_bytes": 0},
                  at_least={"arrays.logits.load_efficiency": 0.9, "arrays.dlogits.store_efficiency": 0.9})


# --- adamw_update --------------------------------------------------------------------------------

@probe("cuda_fast/adamw_update", points=2, **FLOAT32,
       hint="m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr "
            "(m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd p).")
def adamw_three_steps(nb):
    params, m, v = dev(normal(70, 300)), dev(np.zeros(300)), dev(np.zeros(300))
    for t in (1, 2, 3):
        nb.adamw_update(params, m, v, dev(normal(70 + t, 300, scale=t)), t, lr=1e-2, weight_decay=0.1)
    return {"params": host(params), "m": host(m), "v": host(v)}


# --- encoder_forward -----------------------------------------------------------------------------

def encoder_inputs(seed, B=3, T=5, C=12, V=7, maxT=8):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (B, T)).astype(np.int32)
    idx[0, :3] = 4  # a token repeated in one sequence
    return idx, normal(seed + 1, V, C), normal(seed + 2, maxT, C)


@probe("cuda_fast/encoder_forward", points=2, **FLOAT32, layout=("b", "t", "channel"),
       hint="out[i] = wte[idx[bt] * C + c] + wpe[t * C + c] with c = i % C, bt = i / C, "
            "t = bt % T.")
def encoder_values(nb):
    idx, wte, wpe = encoder_inputs(80)
    return host(nb.encoder_forward(dev(idx, np.int32), dev(wte), dev(wpe)))


# --- encoder_backward ----------------------------------------------------------------------------

def encoder_gradients(fn, seed):
    idx, wte, wpe = encoder_inputs(seed)
    dout = normal(seed + 3, *idx.shape, wte.shape[1])
    dwte, dwpe = dev(normal(seed + 4, *wte.shape)), dev(normal(seed + 5, *wpe.shape))  # nonzero: must add into them
    fn(dwte, dwpe, dev(dout), dev(idx, np.int32))
    return {"dwte": host(dwte), "dwpe": host(dwpe)}


@probe("cuda_fast/encoder_backward", points=2, **FLOAT32, layout=EMBEDDINGS,
       hint="A repeated token sends several threads to one address: "
            "atomicAdd(&dwte[idx * C + c], dout[i]), and the same for dwpe[t * C + c].")
def encoder_scatter(nb):
    return encoder_gradients(nb.encoder_backward, 81)


# --- encoder_backward_deterministic --------------------------------------------------------------

@probe("cuda_fast/encoder_backward_deterministic", points=2, **FLOAT32, layout=EMBEDDINGS,
       hint="dwpe: one thread per (t, c) sums over b; dwte: one thread per (bucket, c) sums "
            "dout[positions[j]] for j in its bucket.")
def encoder_fixed_order(nb):
    return encoder_gradients(nb.encoder_backward_deterministic, 82)


@probe("cuda_fast/encoder_backward_deterministic", points=1,
       hint=("Summing in a fixed order, without atomics, gives bit-identical results run after "
             "run.",))
def encoder_bitwise_repeatable(nb):
    runs = [encoder_gradients(nb.encoder_backward_deterministic, 83) for _ in range(2)]
    return all(np.array_equal(runs[0][k], runs[1][k]) for k in ("dwte", "dwpe"))


# --- gpt2 ----------------------------------------------------------------------------------------

def perturbed_reference(config, seed):
    """The reference GPT-2 with its biases and layernorms moved away from 0 and 1,
    so every gradient path carries signal."""
    reference = GPT2(config, seed=seed)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        for p in reference.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return reference


def tiny_model_and_batch(nb, seed):
    """The learner's KernelGPT2 with the weights of perturbed_reference, and a seeded batch on the backend's device."""
    config = GPT2Config.preset("tiny")
    reference = perturbed_reference(config, seed)
    model = nb.KernelGPT2(config)
    model.load_state_dict(reference.state_dict())
    idx, targets = torch.randint(0, config.vocab_size, (2, 2, 12), generator=torch.Generator().manual_seed(seed))
    device = "cuda" if backend_name() == "cupy" else "cpu"
    return model.to(device), idx.to(device), targets.to(device)


@probe("cuda_fast/gpt2", points=3, **KERNEL_GPT2, uses=KERNELS,
       hint="encoder, then per block x + attn(ln_1(x)) and x + mlp(ln_2(x)), ln_f, "
            "logits = x @ wte^T, the fused loss; all through the Functions.")
def gpt2_loss_and_gradients(nb):
    model, idx, targets = tiny_model_and_batch(nb, 90)
    loss = model(idx, targets)
    loss.backward()
    grads = {name: p.grad.detach().cpu().numpy() for name, p in model.named_parameters()}
    picked = ("ln_f.weight", "h.0.ln_1.bias", "h.1.attn.c_attn.bias", "h.0.mlp.c_proj.bias", "h.1.mlp.c_fc.bias")
    return {"loss": loss.item(), **{name: grads[name] for name in picked},
            "wte_row_norms": np.linalg.norm(grads["wte.weight"], axis=1),
            "wpe_row_norms": np.linalg.norm(grads["wpe.weight"], axis=1),
            "h.0.attn.c_attn.weight": grads["h.0.attn.c_attn.weight"][:, ::4]}


@probe("cuda_fast/gpt2", points=1, **FLOAT32,
       hint=("Three training steps (forward, backward, AdamW on your kernels) on one batch: "
             "the loss must fall as the reference's does.",))
def gpt2_training_steps(nb):
    model, idx, targets = tiny_model_and_batch(nb, 91)
    state = {}
    return [nb.kernel_training_step(model, idx, targets, state, lr=1e-2) for _ in range(3)]
