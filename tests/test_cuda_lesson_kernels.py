"""The reference kernels of lessons 06 and 07 against independent oracles (numpy, PyTorch in float64), and against GPU
compilers.

The kernels run on whichever CUDA backend is active (the CPU emulator without a GPU). Sizes are
small and deliberately not multiples of block or tile sizes. Kernels with barriers also run under
the emulator's race exposure, so a missing __syncthreads() would fail here rather than on a GPU.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmc_core.cuda import backend_name, compile_check, cp
from llmc_core.probes.cuda import dev, races_exposed

LESSON = "06_cuda_kernels"  # the notebook `nb` (tests/conftest.py) loads

F32 = dict(rtol=1e-5, atol=1e-5)  # float32 kernels against float64 references


@pytest.fixture(scope="module")
def fast(notebooks):
    return notebooks("07_cuda_kernels_fast")


def test_kernels_module_hands_out_lesson_06s_solution(nb):
    """llmc_core.kernels, through which lesson 07 uses lesson 06's kernels, exports names the solution defines."""
    from llmc_core import kernels
    assert [name for name in kernels.__all__ if not callable(getattr(kernels, name))] == []
    assert set(kernels.__all__) <= set(vars(nb))
    with pytest.raises(AttributeError):
        kernels.no_such_kernel


def normal(seed, *shape, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def host(a):
    return cp.asnumpy(a).astype(np.float64)


def close(got, expected, rtol, atol):
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    diff = np.abs(got - expected)
    worst = np.unravel_index(np.argmax(diff - rtol * np.abs(expected)), diff.shape) if diff.size else ()
    assert np.allclose(got, expected, rtol=rtol, atol=atol), (
        f"max abs diff {diff.max():.3e}; at {worst}: got {got[worst]!r}, expected {expected[worst]!r}")


def torch_gelu(x):
    return F.gelu(x, approximate="tanh")


# ---------------------------------------------------------------- elementwise

@pytest.mark.parametrize("name", ["gelu_forward", "gelu_forward_float4"])
@pytest.mark.parametrize("N", [1, 3, 256, 1003], ids=lambda n: f"N{n}")
def test_gelu_forward(nb, name, N):
    x = normal(N, N, scale=3.0).astype(np.float32)
    expected = torch_gelu(torch.from_numpy(x).double()).numpy()
    close(host(getattr(nb, name)(dev(x))), expected, **F32)


def test_gelu_backward(nb):
    x = torch.from_numpy(normal(1, 999, scale=3.0).astype(np.float32)).double().requires_grad_(True)
    dout = torch.from_numpy(normal(2, 999).astype(np.float32)).double()
    torch_gelu(x).backward(dout)
    close(host(nb.gelu_backward(dev(x.detach().numpy()), dev(dout.numpy()))), x.grad.numpy(), **F32)


def test_adamw_matches_torch(fast):
    p0 = normal(3, 500).astype(np.float32)
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    optimizer = torch.optim.AdamW([param], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    p, m, v = dev(p0), dev(np.zeros(500)), dev(np.zeros(500))
    for t in range(1, 6):
        g = normal(3 + t, 500, scale=t).astype(np.float32)
        param.grad = torch.from_numpy(g)
        optimizer.step()
        fast.adamw_update(p, m, v, dev(g), t, lr=1e-2, weight_decay=0.1)
    close(host(p), param.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_adamw_rejects_step_zero(fast):
    with pytest.raises(ValueError, match="t=0"):
        fast.adamw_update(dev(np.ones(4)), dev(np.zeros(4)), dev(np.zeros(4)), dev(np.ones(4)), 0)


# ---------------------------------------------------------------- layernorm

@pytest.mark.parametrize("name", ["layernorm_forward", "layernorm_forward_warp"])
@pytest.mark.parametrize("N,C", [(1, 1), (9, 20), (7, 100), (3, 1600)], ids=lambda v: str(v))
def test_layernorm_forward(nb, name, N, C):
    x = normal(10 + C, N, C, scale=2.0, shift=3.0).astype(np.float32)
    w, b = normal(11, C, shift=1.0).astype(np.float32), normal(12, C).astype(np.float32)
    out, mean, rstd = getattr(nb, name)(dev(x), dev(w), dev(b))
    xt = torch.from_numpy(x).double()
    expected = F.layer_norm(xt, (C,), torch.from_numpy(w).double(), torch.from_numpy(b).double(), eps=1e-5)
    close(host(out), expected.numpy(), **F32)
    close(host(mean), xt.mean(dim=1).numpy(), **F32)
    close(host(rstd), (1 / torch.sqrt(xt.var(dim=1, unbiased=False) + 1e-5)).numpy(), rtol=1e-5, atol=1e-6)


def test_layernorm_forward_warp_rejects_wide_rows(nb):
    x = dev(np.ones((1, 2049)))
    with pytest.raises(ValueError, match="C=2049"):
        nb.layernorm_forward_warp(x, dev(np.ones(2049)), dev(np.zeros(2049)))


@pytest.mark.parametrize("N,C", [(1, 5), (6, 70), (29, 45), (17, 768)], ids=lambda v: str(v))
def test_layernorm_backward_matches_autograd(nb, N, C):
    x = torch.from_numpy(normal(20, N, C, scale=2.0, shift=3.0).astype(np.float32)).double().requires_grad_(True)
    w = torch.from_numpy(normal(21, C, shift=1.0).astype(np.float32)).double().requires_grad_(True)
    b = torch.from_numpy(normal(22, C).astype(np.float32)).double().requires_grad_(True)
    dout = torch.from_numpy(normal(23, N, C).astype(np.float32)).double()
    F.layer_norm(x, (C,), w, b, eps=1e-5).backward(dout)
    _, mean, rstd = nb.layernorm_forward_warp(dev(x.detach().numpy()), dev(w.detach().numpy()), dev(b.detach().numpy()))
    # gradients add into these
    start = [normal(24 + k, *s).astype(np.float32) for k, s in enumerate([(N, C), (C,), (C,)])]
    dinp, dweight, dbias = (dev(a) for a in start)
    with races_exposed(2):
        nb.layernorm_backward(dinp, dweight, dbias, dev(dout.numpy()), dev(x.detach().numpy()), dev(w.detach().numpy()),
                              mean, rstd)
    close(host(dinp), start[0] + x.grad.numpy(), rtol=1e-4, atol=1e-5)
    close(host(dweight), start[1] + w.grad.numpy(), rtol=1e-4, atol=1e-4)
    close(host(dbias), start[2] + b.grad.numpy(), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- softmax

@pytest.mark.parametrize("name", ["softmax_forward", "softmax_online"])
@pytest.mark.parametrize("N,C,scale", [(3, 1, 1.0), (5, 7, 10.0), (6, 300, 40.0), (2, 5000, 100.0)],
                         ids=lambda v: str(v))
def test_softmax(nb, name, N, C, scale):
    x = normal(30 + C, N, C, scale=scale).astype(np.float32)
    if C > 2:
        x[N - 1, C // 2:] = -np.inf  # masked, as in causal attention
    expected = torch.softmax(torch.from_numpy(x).double(), dim=-1).numpy()
    close(host(getattr(nb, name)(dev(x))), expected, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- matmul

@pytest.mark.parametrize("name", ["matmul_naive", "matmul_tiled", "matmul_blocked"])
@pytest.mark.parametrize("N,C,OC", [(1, 1, 1), (19, 37, 45), (130, 20, 140), (64, 64, 256)], ids=lambda v: str(v))
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_matmul(fast, name, N, C, OC, with_bias):
    inp, w, b = (normal(40, N, C).astype(np.float32), normal(41, C, OC).astype(np.float32),
                 normal(42, OC).astype(np.float32))
    expected = inp.astype(np.float64) @ w.astype(np.float64) + (b if with_bias else 0)
    with races_exposed(4):
        out = getattr(fast, name)(dev(inp), dev(w), dev(b) if with_bias else None)
    close(host(out), expected, rtol=1e-5, atol=1e-5)


def test_matmul_rejects_mismatched_shapes(fast):
    with pytest.raises(ValueError, match="weight must be"):
        fast.matmul_naive(dev(np.ones((2, 3))), dev(np.ones((4, 5))))


def test_tiled_matmul_without_barriers_is_caught(fast):
    """The race exposure the probes rely on does expose a tile read before it is complete."""
    if backend_name() != "cpu":
        pytest.skip("race exposure is a feature of the CPU emulator")
    broken = fast.matmul_tiled_source().replace("__syncthreads();", "")
    kernel = fast.compiled(broken, "matmul_tiled")
    inp, w = normal(43, 33, 40).astype(np.float32), normal(44, 40, 20).astype(np.float32)
    out = cp.empty((33, 20), dtype=cp.float32)
    args = (out, dev(inp), dev(w), dev(np.zeros(20)), np.int32(33), np.int32(40), np.int32(20))
    with races_exposed(5):
        kernel((2, 3), (16, 16), args)
    assert not np.allclose(host(out), inp.astype(np.float64) @ w, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- attention

def torch_attention(qkv, n_head):
    B, T, C3 = qkv.shape
    C = C3 // 3
    q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in qkv.split(C, dim=2))
    att = torch.softmax((q @ k.transpose(-2, -1) / np.sqrt(C // n_head)).masked_fill(
        torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")), dim=-1)
    return (att @ v).transpose(1, 2).reshape(B, T, C), att


ATTENTION_SIZES = [(1, 1, 8, 1), (2, 7, 24, 3), (1, 5, 80, 2), (2, 9, 256, 2)]  # B, T, C, NH: HS 8, 8, 40, 128


@pytest.mark.parametrize("B,T,C,NH", ATTENTION_SIZES, ids=lambda v: str(v))
def test_attention_forward_composed_and_fused(fast, B, T, C, NH):
    qkv = normal(50 + C, B, T, 3 * C, scale=1.5).astype(np.float32)
    expected, expected_att = torch_attention(torch.from_numpy(qkv).double(), NH)
    out, att = fast.attention_forward(dev(qkv), NH)
    close(host(out), expected.numpy(), **F32)
    close(host(att), expected_att.numpy(), **F32)
    close(host(fast.attention_fused(dev(qkv), NH)), expected.numpy(), **F32)


@pytest.mark.parametrize("B,T,C,NH", ATTENTION_SIZES[:3], ids=lambda v: str(v))
def test_attention_backward_matches_autograd(fast, B, T, C, NH):
    qkv = torch.from_numpy(normal(60 + C, B, T, 3 * C, scale=1.5).astype(np.float32)).double().requires_grad_(True)
    dout = torch.from_numpy(normal(61, B, T, C).astype(np.float32)).double()
    out, att = torch_attention(qkv, NH)
    out.backward(dout)
    got = fast.attention_backward(dev(dout.numpy()), dev(qkv.detach().numpy()), dev(att.detach().numpy()))
    close(host(got), qkv.grad.numpy(), **F32)


def test_attention_fused_rejects_wide_heads(fast):
    with pytest.raises(ValueError, match="<= 128"):
        fast.attention_fused(dev(np.ones((1, 2, 3 * 256))), 1)


# ---------------------------------------------------------------- classifier

@pytest.mark.parametrize("N,V,Vp,block", [(1, 1, 1, 32), (6, 50, 64, 256), (3, 600, 640, 256), (2, 5000, 5120, 1024)],
                         ids=lambda v: str(v))
@pytest.mark.parametrize("in_place", [False, True], ids=["separate", "in_place"])
def test_classifier_matches_cross_entropy(fast, N, V, Vp, block, in_place):
    logits = normal(70 + V, N, Vp, scale=20.0).astype(np.float32)
    targets = np.random.default_rng(71).integers(0, V, N)
    lt = torch.from_numpy(logits[:, :V]).double().requires_grad_(True)
    losses = F.cross_entropy(lt, torch.from_numpy(targets), reduction="none")
    (losses.sum() * 0.25).backward()  # dloss = 0.25 for every row
    with races_exposed(6):
        got_losses, dlogits = fast.classifier_fused(dev(logits), dev(targets, np.int32), V=V, dloss=0.25,
                                                    block_size=block, in_place=in_place)
    close(host(got_losses), losses.detach().numpy(), rtol=1e-5, atol=1e-5)
    close(host(dlogits)[:, :V], lt.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert np.all(host(dlogits)[:, V:] == 0), "padding columns get no gradient"


# ---------------------------------------------------------------- encoder

def encoder_case(seed, B, T, C, V, maxT):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (B, T))
    idx[0, : min(3, T)] = V - 1  # a repeated token
    return idx, normal(seed + 1, V, C).astype(np.float32), normal(seed + 2, maxT, C).astype(np.float32)


ENCODER_SIZES = [(1, 1, 1, 1, 1), (3, 5, 12, 7, 8), (4, 16, 64, 3, 16)]  # B, T, C, V, maxT


@pytest.mark.parametrize("B,T,C,V,maxT", ENCODER_SIZES, ids=lambda v: str(v))
def test_encoder_forward(fast, B, T, C, V, maxT):
    idx, wte, wpe = encoder_case(80, B, T, C, V, maxT)
    close(host(fast.encoder_forward(dev(idx, np.int32), dev(wte), dev(wpe))), wte[idx].astype(np.float64) + wpe[:T],
          **F32)


def test_encoder_forward_rejects_long_sequences(fast):
    with pytest.raises(ValueError, match="T=5"):
        fast.encoder_forward(dev(np.zeros((1, 5)), np.int32), dev(np.ones((3, 2))), dev(np.ones((4, 2))))


@pytest.mark.parametrize("name", ["encoder_backward", "encoder_backward_deterministic"])
@pytest.mark.parametrize("B,T,C,V,maxT", ENCODER_SIZES, ids=lambda v: str(v))
def test_encoder_backward_matches_autograd(fast, name, B, T, C, V, maxT):
    idx, wte, wpe = encoder_case(81, B, T, C, V, maxT)
    wte_t, wpe_t = (torch.from_numpy(a).double().requires_grad_(True) for a in (wte, wpe))
    dout = normal(82, B, T, C).astype(np.float32)
    (F.embedding(torch.from_numpy(idx), wte_t) + wpe_t[:T]).backward(torch.from_numpy(dout).double())
    start = normal(83, V, C).astype(np.float32), normal(84, maxT, C).astype(np.float32)  # gradients add into these
    dwte, dwpe = dev(start[0]), dev(start[1])
    getattr(fast, name)(dwte, dwpe, dev(dout), dev(idx, np.int32))
    close(host(dwte), start[0] + wte_t.grad.numpy(), **F32)
    close(host(dwpe), start[1] + wpe_t.grad.numpy(), **F32)


def test_deterministic_encoder_backward_sums_in_token_order(fast):
    """Bit for bit what a sequential float32 sum over each token's positions, in order, gives."""
    idx, wte, wpe = encoder_case(85, 4, 16, 8, 3, 16)
    dout = normal(86, 4, 16, 8, scale=1e3).astype(np.float32)  # large and mixed values: order changes the last bits
    dwte, dwpe = dev(np.zeros_like(wte)), dev(np.zeros_like(wpe))
    fast.encoder_backward_deterministic(dwte, dwpe, dev(dout), dev(idx, np.int32))
    expected = np.zeros_like(wte)
    for position, token in enumerate(idx.reshape(-1)):
        expected[token] += dout.reshape(-1, 8)[position]  # float32 += in position order
    assert np.array_equal(cp.asnumpy(dwte), expected)


# ---------------------------------------------------------------- occupancy

@pytest.mark.parametrize("args,expected", [
    ((256, 32, 0), 1.0),             # 8 warps x 8 blocks
    ((256, 64, 0), 0.5),             # registers: 65536 / (64 * 256) = 4 blocks
    ((256, 255, 0), 0.125),          # 1 block
    ((128, 32, 48 * 1024), 0.25),    # shared memory: 4 blocks of 4 warps
    ((32, 16, 0), 0.5),              # the 32-block limit: 32 warps
    ((100, 32, 0), 1.0),             # 4 warps (rounded up) x 16 blocks
], ids=["warps", "registers", "one_block", "shared", "block_limit", "partial_warp"])
def test_occupancy(nb, args, expected):
    """Expected values worked out by hand from the limits in SM_LIMITS."""
    assert nb.occupancy(*args) == pytest.approx(expected, rel=0, abs=1e-12)


@pytest.mark.parametrize("args", [(0, 32, 0), (1025, 32, 0), (1024, 128, 0), (64, 32, 229 * 1024)],
                         ids=["empty", "too_many_threads", "registers", "shared"])
def test_occupancy_rejects_blocks_that_do_not_fit(nb, args):
    with pytest.raises(ValueError):
        nb.occupancy(*args)


# ---------------------------------------------------------------- GPU compilers

SOURCES = {  # lesson notebook -> the kernels whose CUDA C source it defines
    "06_cuda_kernels": ["gelu_forward", "gelu_forward_float4", "gelu_backward", "layernorm_forward",
                        "layernorm_forward_warp", "layernorm_backward", "softmax_forward", "softmax_online"],
    "07_cuda_kernels_fast": ["matmul_naive", "matmul_tiled", "matmul_blocked", "attention_forward", "attention_fused",
                             "attention_backward", "classifier_fused", "adamw_update", "encoder_forward",
                             "encoder_backward", "encoder_backward_deterministic"],
}


@pytest.fixture(scope="module")
def lessons(nb, fast):
    return {"06_cuda_kernels": nb, "07_cuda_kernels_fast": fast}


@pytest.mark.parametrize("lesson", SOURCES)
def test_every_source_is_listed(lessons, lesson):
    notebook = lessons[lesson]
    defined = sorted(name[: -len("_source")] for name in vars(notebook)
                     if name.endswith("_source") and callable(getattr(notebook, name)))
    assert defined == sorted(SOURCES[lesson])


@pytest.mark.parametrize("lesson,name", [(lesson, name) for lesson, names in SOURCES.items() for name in names])
def test_source_compiles_for_a_gpu(lessons, lesson, name):
    """NVRTC (CuPy's compiler) and nvcc --ptx accept the source; a compiler that is not installed is skipped,
    not passed."""
    report = compile_check(getattr(lessons[lesson], f"{name}_source")())
    ran = [compiler for compiler, result in report.items() if result.startswith("ok")]
    if not ran:
        pytest.skip(f"no GPU compiler here: {report}")
    assert ran, report


def test_timing_spin_kernel_compiles_for_a_gpu(nb):
    """time_kernel's busy-wait kernel runs only on a GPU (the emulator has no clock64), so only a compiler checks it."""
    report = compile_check(nb.SPIN_SOURCE)
    if not any(result.startswith("ok") for result in report.values()):
        pytest.skip(f"no GPU compiler here: {report}")
