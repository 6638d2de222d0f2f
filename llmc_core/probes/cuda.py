"""Probes of lesson 06: CUDA kernels for GPT-2.

Every probe launches the learner's kernel through the notebook's launcher on small seeded
float32 inputs, on whichever backend runs (the CPU emulator in CI and grading). Sizes are not
multiples of the block or tile sizes, so a missing bounds check shows; values are far from 0 and 1
(shifted means, scaled logits, nonzero gradient buffers for kernels that add), so a wrong formula
cannot hide. Tolerances allow the few-ulp differences between the emulator and a GPU (FMA,
fast intrinsics, atomic order). Kernels with barriers also run under the emulator's race exposure,
which reorders threads between barriers so a missing __syncthreads() gives wrong numbers.
"""
from contextlib import nullcontext

import numpy as np
import torch

from llmc_core.cuda import backend_name, cp
from llmc_core.exercises import probe, raised
from llmc_core.gpt2 import GPT2, GPT2Config

F32 = dict(rtol=1e-4, atol=1e-5)  # float32 kernels: summation order and intrinsics may differ by ulps


def normal(seed, *shape, scale=1.0, shift=0.0):
    """A float32 host array of normal samples."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)


def dev(a, dtype=np.float32):
    """A contiguous device copy of a host array."""
    return cp.asarray(np.ascontiguousarray(a, dtype=dtype))


def host(a):
    return cp.asnumpy(a).astype(np.float32) if a.dtype == np.float32 else cp.asnumpy(a)


def races_exposed(seed):
    """On the CPU emulator: run threads in a seeded random order between barriers. On a GPU: nothing."""
    if backend_name() == "cpu":
        from llmc_core.cuda import race_exposure
        return race_exposure(seed)
    return nullcontext()


def summary(a):
    """A large 2-D result as row sums, column sums and its top-left corner: any wrong element moves a sum."""
    a = host(a)
    return {"shape": list(a.shape), "row_sums": a.sum(axis=1), "col_sums": a.sum(axis=0), "corner": a[:8, :8]}


# ---------------------------------------------------------------- occupancy

@probe("cuda/occupancy", points=2, hint="warps per block = ceil(threads / 32); blocks per SM = min(64 // warps, 32, "
       "65536 // (registers * 32 * warps), shared // shared per block); occupancy = blocks * warps / 64.")
def occupancy_budgets(nb):
    configs = [(256, 32, 0), (256, 64, 0), (256, 128, 0), (1024, 32, 0), (128, 32, 48 * 1024), (64, 16, 0), (96, 40, 1000)]
    return [nb.occupancy(*c) for c in configs]


@probe("cuda/occupancy", points=1, hint="A block of 100 threads still takes 4 whole warps: round up.")
def partial_warp(nb):
    return [nb.occupancy(100, 32, 0), nb.occupancy(33, 255, 0)]


@probe("cuda/occupancy", points=1, hint="Raise ValueError when a block has more than 1024 threads, or when one block "
       "needs more registers or shared memory than the SM has (zero blocks fit).")
def blocks_that_do_not_fit(nb):
    return [raised(nb.occupancy, 2048, 32, 0), raised(nb.occupancy, 1024, 255, 0),
            raised(nb.occupancy, 256, 32, 300 * 1024)]


# ---------------------------------------------------------------- GELU

@probe("cuda/gelu_forward", points=2, hint="i = blockIdx.x * blockDim.x + threadIdx.x; out[i] = 0.5 x (1 + tanhf(0.79788456 (x + 0.044715 x^3))).", **F32)
def gelu_values(nb):
    return host(nb.gelu_forward(dev(normal(0, 1003, scale=3.0))))


@probe("cuda/gelu_forward", points=1, hint="N = 5 is less than one block: threads with i >= N must not touch memory.", **F32)
def gelu_smaller_than_a_block(nb):
    return host(nb.gelu_forward(dev(normal(1, 5, scale=3.0))))


@probe("cuda/gelu_forward_float4", points=2, hint="Thread k loads reinterpret_cast<const float4*>(inp)[k] and stores 4 results as one float4.", **F32)
def gelu_float4_multiple_of_4(nb):
    return host(nb.gelu_forward_float4(dev(normal(2, 1024, scale=3.0))))


@probe("cuda/gelu_forward_float4", points=1, hint="N = 1003 leaves 3 elements after the last whole float4: do them one at a time.", **F32)
def gelu_float4_tail(nb):
    return host(nb.gelu_forward_float4(dev(normal(3, 1003, scale=3.0))))


@probe("cuda/gelu_forward_float4", points=1, hint="N = 2: no whole float4 at all; thread 0 does both elements one at a time.", **F32)
def gelu_float4_shorter_than_4(nb):
    return host(nb.gelu_forward_float4(dev(normal(4, 2, scale=3.0))))


@probe("cuda/gelu_backward", points=2, hint="dinp = (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)) * dout.", **F32)
def gelu_gradient(nb):
    x, dout = normal(5, 777, scale=3.0), normal(6, 777)
    return host(nb.gelu_backward(dev(x), dev(dout)))


# ---------------------------------------------------------------- LayerNorm

def layernorm_inputs(seed, N, C):
    x = normal(seed, N, C, scale=2.0, shift=3.0)  # mean far from 0, variance far from 1
    return x, normal(seed + 100, C, scale=0.5, shift=1.0), normal(seed + 200, C, scale=0.5)


def layernorm_outputs(fn, x, w, b):
    out, mean, rstd = fn(dev(x), dev(w), dev(b))
    return {"out": host(out), "mean": host(mean), "rstd": host(rstd)}


@probe("cuda/layernorm_forward", points=2, hint="One thread per row: mean, biased variance, rstd = rsqrtf(var + 1e-5), out = (x - mean) rstd weight + bias; write mean and rstd too.", **F32)
def layernorm_thread_per_row(nb):
    return layernorm_outputs(nb.layernorm_forward, *layernorm_inputs(10, 7, 100))


@probe("cuda/layernorm_forward", points=1, hint="A constant row has variance 0: eps keeps rstd finite and out equals bias.", **F32)
def layernorm_constant_row(nb):
    x, w, b = layernorm_inputs(11, 3, 40)
    x[1] = 7.0
    return layernorm_outputs(nb.layernorm_forward, x, w, b)


@probe("cuda/layernorm_forward_warp", points=2, hint="row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; lane l reads channels l, l + 32, ...; sum with __shfl_xor_sync.", **F32)
def layernorm_warp_per_row(nb):
    return layernorm_outputs(nb.layernorm_forward_warp, *layernorm_inputs(12, 9, 100))


@probe("cuda/layernorm_forward_warp", points=1, hint="C = 20 is less than a warp: lanes 20-31 hold no channel and must add 0.", **F32)
def layernorm_warp_narrow_rows(nb):
    return layernorm_outputs(nb.layernorm_forward_warp, *layernorm_inputs(13, 5, 20))


@probe("cuda/layernorm_forward_warp", points=1, hint="C = 1600 (GPT-2 XL): each lane holds 50 channels.", **F32)
def layernorm_warp_wide_rows(nb):
    out = layernorm_outputs(nb.layernorm_forward_warp, *layernorm_inputs(14, 2, 1600))
    return {"out": out["out"][:, ::4], "mean": out["mean"], "rstd": out["rstd"]}


def layernorm_backward_outputs(nb, seed, N, C):
    x, w, b = layernorm_inputs(seed, N, C)
    dout = normal(seed + 1, N, C)
    x_mean = x.mean(axis=1, dtype=np.float64)
    mean = x_mean.astype(np.float32)  # the forward's cache, computed here so this probe needs only the backward
    rstd = (1 / np.sqrt(((x - x_mean[:, None]) ** 2).mean(axis=1) + 1e-5)).astype(np.float32)
    # gradient buffers start nonzero: the kernel must add into them
    dinp, dweight, dbias = dev(normal(seed + 2, N, C)), dev(normal(seed + 3, C)), dev(normal(seed + 4, C))
    nb.layernorm_backward(dinp, dweight, dbias, dev(dout), dev(x), dev(w), dev(mean), dev(rstd))
    return {"dinp": host(dinp), "dweight": host(dweight), "dbias": host(dbias)}


@probe("cuda/layernorm_backward", points=2, hint="dinp += rstd (g - mean(g) - n mean(g n)) with g = dout weight, n = (x - mean) rstd; dweight += sum of dout n, dbias += sum of dout.", **F32)
def layernorm_gradients(nb):
    return layernorm_backward_outputs(nb, 20, 6, 70)


@probe("cuda/layernorm_backward", points=1, hint="Several blocks add into dweight and dbias: each block's partial sums go in with atomicAdd; "
       "every thread must reach __syncthreads (no early return).", **F32)
def layernorm_gradients_many_blocks(nb):
    with races_exposed(3):
        return layernorm_backward_outputs(nb, 21, 29, 45)


# ---------------------------------------------------------------- softmax

def softmax_input(seed, N, C):
    x = normal(seed, N, C, scale=40.0)  # exp would overflow without subtracting the max
    x[1, C // 2:] = -np.inf  # a masked row, as in causal attention
    return x


@probe("cuda/softmax_forward", points=2, hint="Per row: the max, then the sum of expf(x - max), then out = expf(x - max) / sum.", **F32)
def softmax_three_pass(nb):
    return host(nb.softmax_forward(dev(softmax_input(30, 5, 300))))


@probe("cuda/softmax_online", points=2, hint="Keep (m, s): for x > m, s = s expf(m - x) + 1 and m = x, else s += expf(x - m); merge lanes with "
       "M = max(m1, m2), s = s1 expf(m1 - M) + s2 expf(m2 - M).", **F32)
def softmax_online_values(nb):
    return host(nb.softmax_online(dev(softmax_input(31, 6, 300))))


@probe("cuda/softmax_online", points=1, hint="C = 5: lanes 5-31 see no value; starting m at -FLT_MAX (finite) keeps their merge from producing NaN.", **F32)
def softmax_online_short_rows(nb):
    return host(nb.softmax_online(dev(normal(32, 7, 5, scale=10.0))))


# ---------------------------------------------------------------- matmul

def matmul_inputs(seed, N, C, OC):
    return normal(seed, N, C), normal(seed + 1, C, OC), normal(seed + 2, OC, shift=1.0)


@probe("cuda/matmul_naive", points=2, hint="out[row, col] = bias[col] + sum over k of inp[row * C + k] * weight[k * OC + col]; check row < N and col < OC.", **F32)
def matmul_naive_values(nb):
    inp, w, b = matmul_inputs(40, 19, 37, 45)
    return host(nb.matmul_naive(dev(inp), dev(w), dev(b)))


@probe("cuda/matmul_tiled", points=2, hint="Load one element of each 16 x 16 tile per thread (0 outside), __syncthreads, 16 multiply-adds, __syncthreads.", **F32)
def matmul_tiled_values(nb):
    inp, w, b = matmul_inputs(41, 19, 37, 45)
    return host(nb.matmul_tiled(dev(inp), dev(w), dev(b)))


@probe("cuda/matmul_tiled", points=1, hint="Threads here run in a random order between barriers: the tile must be complete before anyone "
       "reads it, and read by all before it is overwritten (two __syncthreads per step).", **F32)
def matmul_tiled_barriers(nb):
    inp, w, b = matmul_inputs(42, 33, 40, 20)
    with races_exposed(5):
        return host(nb.matmul_tiled(dev(inp), dev(w), dev(b)))


@probe("cuda/matmul_blocked", points=2, hint="Each thread accumulates its 8 x 8 outputs in registers: per k, 8 values of inp_tile[k] (rows ty*4.., 64+ty*4..) times 8 of weight_tile[k] (columns tx*4.., 64+tx*4..).", **F32)
def matmul_blocked_values(nb):
    inp, w, b = matmul_inputs(43, 19, 37, 45)
    return host(nb.matmul_blocked(dev(inp), dev(w), dev(b)))


@probe("cuda/matmul_blocked", points=1, hint="N = 130 and OC = 140 need 2 x 2 blocks of 128 x 128, most of the outer ones out of range: load 0 there and skip the stores.", **F32)
def matmul_blocked_several_blocks(nb):
    inp, w, b = matmul_inputs(44, 130, 20, 140)
    with races_exposed(7):
        return summary(nb.matmul_blocked(dev(inp), dev(w), dev(b)))


# ---------------------------------------------------------------- attention

def qkv_input(seed, B, T, C):
    return normal(seed, B, T, 3 * C, scale=1.5)


@probe("cuda/attention_forward", points=2, hint="preatt = q.k / sqrtf(HS) for t2 <= t and -inf above the diagonal; out[b, t, c] = sum over t2 <= t of att * v.", **F32)
def attention_composed(nb):
    out, att = nb.attention_forward(dev(qkv_input(50, 2, 7, 24)), 3)
    return {"out": host(out), "att": host(att)}


@probe("cuda/attention_fused", points=2, hint="Per key t2: score = q.k / sqrt(HS) (a warp sum); m_new = max(m, score); rescale s and acc by expf(m - m_new); add p = expf(score - m_new).", **F32)
def attention_fused_values(nb):
    return host(nb.attention_fused(dev(qkv_input(51, 2, 7, 24)), 3))


@probe("cuda/attention_fused", points=1, hint="HS = 40 > 32: lane l owns channels l and l + 32 (when l + 32 < HS).", **F32)
def attention_fused_wide_heads(nb):
    return host(nb.attention_fused(dev(qkv_input(52, 1, 5, 80)), 2))


@probe("cuda/attention_backward", points=3, hint="datt = dout . v; dpreatt = att (datt - sum(datt att)) / sqrt(HS); dq = dpreatt k, dk = dpreatt^T q, dv = att^T dout.", **F32)
def attention_gradients(nb):
    qkv = dev(qkv_input(53, 2, 6, 24))
    dout = dev(normal(54, 2, 6, 24))
    # att from PyTorch, so this probe needs only the backward kernels
    q, k, _ = torch.from_numpy(host(qkv)).double().split(24, dim=2)
    q, k = (t.view(2, 6, 3, 8).transpose(1, 2) for t in (q, k))
    scores = (q @ k.transpose(-2, -1) / np.sqrt(8)).masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
    att = dev(torch.softmax(scores, dim=-1).numpy())
    return host(nb.attention_backward(dout, qkv, att))


# ---------------------------------------------------------------- classifier

def classifier_inputs(seed, N, V, Vp):
    logits = normal(seed, N, Vp, scale=20.0)
    targets = np.random.default_rng(seed + 1).integers(0, V, N).astype(np.int32)
    targets[0] = V - 1  # the last real column
    return logits, targets


@probe("cuda/classifier_fused", points=2, hint="losses = lse - logits[target] with lse = m + logf(s) from an online pass; dlogits = (expf(x - lse) - [i == target]) dloss, 0 for i >= V.", **F32)
def classifier_losses_and_gradients(nb):
    logits, targets = classifier_inputs(60, 6, 50, 64)
    losses, dlogits = nb.classifier_fused(dev(logits), dev(targets, np.int32), V=50)
    return {"losses": host(losses), "dlogits": host(dlogits)}


@probe("cuda/classifier_fused", points=1, hint="With 8 warps, every warp's (max, sum) must be merged through shared memory after a __syncthreads.", **F32)
def classifier_many_warps(nb):
    logits, targets = classifier_inputs(61, 3, 600, 640)
    with races_exposed(9):
        losses, dlogits = nb.classifier_fused(dev(logits), dev(targets, np.int32), V=600, dloss=0.5, block_size=256)
    return {"losses": host(losses), "dlogits_row_sums": host(dlogits).sum(axis=1), "dlogits": host(dlogits)[:, ::5]}


@probe("cuda/classifier_fused", points=1, hint="In place (dlogits is logits): read logits[target] before any thread writes.", **F32)
def classifier_in_place(nb):
    logits, targets = classifier_inputs(62, 4, 100, 128)
    with races_exposed(11):
        losses, dlogits = nb.classifier_fused(dev(logits), dev(targets, np.int32), V=100, in_place=True, block_size=64)
    return {"losses": host(losses), "dlogits": host(dlogits)}


# ---------------------------------------------------------------- AdamW

@probe("cuda/adamw", points=2, hint="m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd p).", **F32)
def adamw_three_steps(nb):
    params, m, v = dev(normal(70, 300)), dev(np.zeros(300)), dev(np.zeros(300))
    for t in (1, 2, 3):
        nb.adamw(params, m, v, dev(normal(70 + t, 300, scale=t)), t, lr=1e-2, weight_decay=0.1)
    return {"params": host(params), "m": host(m), "v": host(v)}


# ---------------------------------------------------------------- encoder

def encoder_inputs(seed, B=3, T=5, C=12, V=7, maxT=8):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (B, T)).astype(np.int32)
    idx[0, :3] = 4  # a token repeated in one sequence
    return idx, normal(seed + 1, V, C), normal(seed + 2, maxT, C)


@probe("cuda/encoder_forward", points=2, hint="out[i] = wte[idx[bt] * C + c] + wpe[t * C + c] with c = i % C, bt = i / C, t = bt % T.", **F32)
def encoder_values(nb):
    idx, wte, wpe = encoder_inputs(80)
    return host(nb.encoder_forward(dev(idx, np.int32), dev(wte), dev(wpe)))


def encoder_gradients(fn, seed):
    idx, wte, wpe = encoder_inputs(seed)
    dout = normal(seed + 3, *idx.shape, wte.shape[1])
    dwte, dwpe = dev(normal(seed + 4, *wte.shape)), dev(normal(seed + 5, *wpe.shape))  # nonzero: must add into them
    fn(dwte, dwpe, dev(dout), dev(idx, np.int32))
    return {"dwte": host(dwte), "dwpe": host(dwpe)}


@probe("cuda/encoder_backward", points=2, hint="A repeated token sends several threads to one address: atomicAdd(&dwte[idx * C + c], dout[i]), and the same for dwpe[t * C + c].", **F32)
def encoder_scatter(nb):
    return encoder_gradients(nb.encoder_backward, 81)


@probe("cuda/encoder_backward_deterministic", points=2, hint="dwpe: one thread per (t, c) sums over b; dwte: one thread per (bucket, c) sums dout[positions[j]] for j in its bucket.", **F32)
def encoder_fixed_order(nb):
    return encoder_gradients(nb.encoder_backward_deterministic, 82)


@probe("cuda/encoder_backward_deterministic", points=1, hint="Summing in a fixed order, without atomics, gives bit-identical results run after run.")
def encoder_bitwise_repeatable(nb):
    runs = [encoder_gradients(nb.encoder_backward_deterministic, 83) for _ in range(2)]
    return all(np.array_equal(runs[0][k], runs[1][k]) for k in ("dwte", "dwpe"))


# ---------------------------------------------------------------- GPT-2

def tiny_model_and_batch(nb, seed):
    """The learner's KernelGPT2 with the reference's weights (biases and layernorms perturbed away from 0 and 1)."""
    config = GPT2Config.preset("tiny")
    reference = GPT2(config, seed=seed)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        for p in reference.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=generator))
    model = nb.KernelGPT2(config)
    model.load_state_dict(reference.state_dict())
    idx, targets = torch.randint(0, config.vocab_size, (2, 2, 12), generator=torch.Generator().manual_seed(seed))
    device = "cuda" if backend_name() == "cupy" else "cpu"
    return model.to(device), idx.to(device), targets.to(device)


@probe("cuda/gpt2", points=3, hint="encoder, then per block x + attn(ln_1(x)) and x + mlp(ln_2(x)), ln_f, logits = x @ wte^T, the fused loss; all through the Functions.",
       rtol=1e-3, atol=1e-6)
def gpt2_loss_and_gradients(nb):
    model, idx, targets = tiny_model_and_batch(nb, 90)
    loss = model(idx, targets)
    loss.backward()
    grads = {name: p.grad.detach().cpu().numpy() for name, p in model.named_parameters()}
    picked = ("ln_f.weight", "h.0.ln_1.bias", "h.1.attn.c_attn.bias", "h.0.mlp.c_proj.bias", "h.1.mlp.c_fc.bias")
    return {"loss": loss.item(), **{name: grads[name] for name in picked},
            "wte_row_norms": np.linalg.norm(grads["wte.weight"], axis=1), "wpe_row_norms": np.linalg.norm(grads["wpe.weight"], axis=1),
            "h.0.attn.c_attn.weight": grads["h.0.attn.c_attn.weight"][:, ::4]}


@probe("cuda/gpt2", points=1, hint="Three training steps (forward, backward, AdamW on your kernels) on one batch: the loss must fall as the reference's does.",
       rtol=1e-4, atol=1e-5)
def gpt2_training_steps(nb):
    model, idx, targets = tiny_model_and_batch(nb, 91)
    state = {}
    return [nb.kernel_training_step(model, idx, targets, state, lr=1e-2) for _ in range(3)]
