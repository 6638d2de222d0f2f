"""The kernels of lessons 06 and 07 against PyTorch on a GPU, at GPT-2 (124M) sizes.

    python benchmarks/cuda_kernels.py            # C=768, V=50257, T=1024; B=64 or 8 (below)
    python benchmarks/cuda_kernels.py --small    # T=256 and 4 times smaller batches: a quicker look

Activation-sized kernels (GELU, LayerNorm, matmul, encoder) run at llm.c's GPT-2 (124M) training
micro-batch, B=64 x T=1024 (at B=8 a LayerNorm moves 25 MB in about 8 microseconds, too short to
measure bandwidth rather than launch latency); vocabulary-sized and attention kernels at B=8,
where a (B*T, V) float32 array is already 1.6 GB.

For every kernel of solutions/06_cuda_kernels.ipynb and solutions/07_cuda_kernels_fast.ipynb: its
time and PyTorch's on the same inputs (median of 10 runs after warm-up, L2 flushed before each,
CUDA events), the ratio, achieved GB/s or TFLOP/s and the share of the device's peak, and the
lessons' targets with whether they are met:
layernorm forward >= 80% of HBM bandwidth; register-blocked matmul >= 60% of cuBLAS FP32 SGEMM
(TF32 off); online softmax and the fused classifier faster than PyTorch's.
Every kernel's output is checked against PyTorch's before it is timed.

Without an NVIDIA GPU (the CUDA backend is the CPU emulator), or without a CUDA build of PyTorch,
it prints "no GPU: skipped" and exits 0: emulator timings say nothing about a GPU, and nothing is
reported as passed. `--smoke` runs the same script at toy sizes on the CPU emulator, to test the
script itself; its timings and targets mean nothing and are labelled so.
"""
import argparse
import sys
from types import SimpleNamespace


def gpu_or_reason():
    """None when CuPy and PyTorch both see a GPU, else why not."""
    from llmc_core.cuda import backend_name, backend_reason
    if backend_name() != "cupy":
        return backend_reason()
    import torch
    if not torch.cuda.is_available():
        return f"CuPy sees a GPU but PyTorch {torch.__version__} has no CUDA; install a CUDA build of torch to compare"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="B=2, T=256 instead of B=8, T=1024")
    parser.add_argument("--reps", type=int, default=10, help="timed runs per kernel (median reported)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed or a kernel is wrong")
    parser.add_argument("--smoke", action="store_true",
                        help="without a GPU: toy sizes on the CPU emulator, to test this script "
                             "(timings and targets meaningless)")
    args = parser.parse_args(argv)

    reason = gpu_or_reason()
    if reason is not None and args.smoke:
        print(f"cuda_kernels --smoke: toy sizes on the CPU emulator ({reason}); timings and targets below mean nothing")
        run(args, device="cpu")
        return 0
    if reason is not None:
        print(f"cuda_kernels: no GPU: skipped ({reason}). Nothing was measured and nothing passed.")
        return 0
    failures = run(args, device="cuda")
    return 1 if failures and args.strict else 0


def run(args, device):
    """Check and time every kernel of lessons 06 and 07 against PyTorch;
    returns the failures (missed targets, wrong outputs)."""
    import torch

    bench = Bench(args, device)
    z = sizes(args, device)
    gen = torch.Generator(device=device).manual_seed(0)
    randn = lambda *shape, scale=1.0: torch.randn(*shape, device=device, generator=gen) * scale  # noqa: E731
    p = bench.peaks
    print(f"device: {p['name']}, peak {p['GB/s']:.0f} GB/s, {p['TFLOP/s']:.1f} FP32 TFLOP/s; "
          f"B={z.B_train} (activations) or {z.B} (vocabulary, attention), T={z.T} C={z.C} NH={z.NH} V={z.V}; "
          f"median of {args.reps} runs, L2 flushed; TF32 off")
    print(f"{'kernel':34} {'ours ms':>9} {'torch ms':>9} {'torch/ours':>10} {'achieved':>16} {'of peak':>8}  target")
    for family in (gelu, layernorm, softmax, matmul, attention, classifier, adamw, encoder):
        family(bench, z, randn, gen)
    print("(encoder_backward_deterministic includes its host-side sort of the tokens; "
          "adamw's torch peer is fused AdamW)")
    if bench.failures:
        print("targets missed or kernels wrong:\n  " + "\n  ".join(bench.failures))
    elif device == "cuda":
        print("every kernel matches PyTorch and every target is met")
    else:
        print("smoke run: every kernel matches PyTorch; no target was judged")
    return bench.failures


def sizes(args, device):
    """GPT-2 (124M) sizes on a GPU (B for vocabulary-sized and attention kernels, B_train for activations);
    toy ones for --smoke."""
    if device == "cuda":
        B, T, C, NH, V, Vp, n_params = ((2, 256) if args.small else (8, 1024)) + (768, 12, 50257, 50304, 124_475_904)
        B_train = 16 if args.small else 64  # activation-sized kernels: llm.c's micro-batch
    else:  # --smoke
        B, T, C, NH, V, Vp, n_params = 2, 8, 64, 2, 500, 512, 10_000
        B_train = 4
    return SimpleNamespace(B=B, T=T, C=C, NH=NH, V=V, Vp=Vp, n_params=n_params, B_train=B_train,
                           N=B * T, N_train=B_train * T)


def load_solutions():
    """Every name of lessons 06 and 07's solution notebooks, in one namespace (07's win a clash)."""
    from llmc_core import load_notebook
    from llmc_core.course import solution_path

    lessons = [load_notebook(solution_path(name)) for name in ("06_cuda_kernels", "07_cuda_kernels_fast")]
    for lesson in lessons:
        if lesson.cell_errors:
            raise RuntimeError(f"a solution notebook did not load cleanly: {lesson.cell_errors}")
    return SimpleNamespace(**{**vars(lessons[0]), **vars(lessons[1])})


class Bench:
    """Both lessons' solutions loaded, the device's peaks, and the failures found so far."""

    def __init__(self, args, device):
        import torch

        from llmc_core.cuda import cp

        self.nb = load_solutions()  # every kernel of both lessons
        self.reps, self.device, self.failures = args.reps, device, []
        torch.backends.cuda.matmul.allow_tf32 = False  # compare with FP32 SGEMM, as the kernels are FP32
        torch.backends.cudnn.allow_tf32 = False
        # nan: clocks not reported
        self.peaks = {k: (float("nan") if v is None else v) for k, v in self.nb.device_peaks().items()}
        if device == "cuda":
            self.dev, self.back = cp.from_dlpack, torch.from_dlpack  # the same memory, seen by the kernels and by torch
        else:
            self.dev = lambda t: cp.asarray(t.detach().numpy())
            self.back = lambda a: torch.from_numpy(cp.asnumpy(a))
            self.peaks = {"name": "CPU emulator (smoke test)", "GB/s": float("nan"), "TFLOP/s": float("nan")}

    def __call__(self, name, ours, theirs, check, nbytes=None, flops=None, target=None):
        """Time ours() and theirs(); check(ours(), theirs()) -> max error or None;
        target(ours_ms, torch_ms, share) -> (text, met)."""
        error = check(ours(), theirs())
        if error is None:
            self.failures.append(f"{name}: output differs from PyTorch")
            print(f"{name:34} WRONG OUTPUT: not timed")
            return
        t_ours = self.nb.time_kernel(ours, warmup=2, reps=self.reps)
        t_torch = self.nb.time_kernel(theirs, warmup=2, reps=self.reps)
        if nbytes is not None:
            achieved, share = nbytes / t_ours / 1e6, nbytes / t_ours / 1e6 / self.peaks["GB/s"]
            text = f"{achieved:8.0f} GB/s"
        else:
            achieved, share = flops / t_ours / 1e9, flops / t_ours / 1e9 / self.peaks["TFLOP/s"]
            text = f"{achieved:7.2f} TFLOP/s"
        verdict = ""
        if target is not None and self.device == "cuda":  # a smoke run on the emulator judges nothing
            description, met = target(t_ours, t_torch, share)
            verdict = f"{description}: {'met' if met else 'NOT MET'}"
            if not met:
                self.failures.append(f"{name}: {description} not met")
        print(f"{name:34} {t_ours:9.3f} {t_torch:9.3f} {t_torch / t_ours:10.2f} {text:>16} {share:8.0%}  {verdict}")

    def max_error(self, rtol, atol):
        """A check: the largest difference of two outputs when they agree within rtol, atol; else None."""
        import torch

        def check(a, b):
            a, b = (torch.as_tensor(x) if isinstance(x, torch.Tensor) else self.back(x) for x in (a, b))
            ok = torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)
            return (a.float() - b.float()).abs().max().item() if ok else None
        return check


def faster(ours, theirs, share):
    return "faster than PyTorch", ours < theirs


def gelu(bench, z, randn, gen):
    """GELU forward (plain and float4) and backward on (B_train, T, 4C)."""
    import torch
    import torch.nn.functional as F
    nb, dev = bench.nb, bench.dev
    x = randn(z.N_train, 4 * z.C, scale=3.0)
    xd, dout4 = dev(x), randn(z.N_train, 4 * z.C)
    n4 = x.numel()
    bench("gelu_forward", lambda: nb.gelu_forward(xd), lambda: F.gelu(x, approximate="tanh"),
          bench.max_error(1e-5, 1e-5), nbytes=2 * 4 * n4)
    bench("gelu_forward_float4", lambda: nb.gelu_forward_float4(xd), lambda: F.gelu(x, approximate="tanh"),
          bench.max_error(1e-5, 1e-5), nbytes=2 * 4 * n4)
    dout4d = dev(dout4)
    bench("gelu_backward", lambda: nb.gelu_backward(xd, dout4d),
          lambda: torch.ops.aten.gelu_backward(dout4, x, approximate="tanh"),
          bench.max_error(1e-5, 1e-5), nbytes=3 * 4 * n4)


def layernorm(bench, z, randn, gen):
    """LayerNorm forward (one thread, one warp per row) and backward on (N_train, C)."""
    import torch
    import torch.nn.functional as F

    from llmc_core.cuda import cp
    nb, dev, back, C, N_train = bench.nb, bench.dev, bench.back, z.C, z.N_train
    xl, w, b = randn(N_train, C, scale=2.0) + 1.0, randn(C) + 1.0, randn(C)
    ln_torch = lambda: F.layer_norm(xl, (C,), w, b, eps=1e-5)  # noqa: E731
    ln_target = lambda ours, theirs, share: ("layernorm forward >= 80% of peak bandwidth", share >= 0.8)  # noqa: E731
    xld, wd, bd = dev(xl), dev(w), dev(b)  # converted once, outside the timed launches
    for fn in (nb.layernorm_forward, nb.layernorm_forward_warp):
        bench(fn.__name__, lambda fn=fn: fn(xld, wd, bd)[0], ln_torch, bench.max_error(1e-4, 1e-4),
              nbytes=2 * 4 * N_train * C, target=ln_target if fn is nb.layernorm_forward_warp else None)
    _, mean, rstd = nb.layernorm_forward_warp(xld, wd, bd)
    dout = randn(N_train, C)
    doutd = dev(dout)
    dinp = cp.zeros((N_train, C), dtype=cp.float32)
    dweight, dbias = cp.zeros(C, dtype=cp.float32), cp.zeros(C, dtype=cp.float32)

    def ln_backward_ours():
        dinp.fill(0), dweight.fill(0), dbias.fill(0)  # the kernel adds into them
        return nb.layernorm_backward(dinp, dweight, dbias, doutd, xld, wd, mean, rstd)[0]
    bench("layernorm_backward (+3 memsets)", ln_backward_ours,
          lambda: torch.ops.aten.native_layer_norm_backward(dout, xl, (C,), back(mean).view(N_train, 1),
                                                           back(rstd).view(N_train, 1), w, b,
                                                           [True, True, True])[0],
          bench.max_error(1e-3, 1e-3), nbytes=4 * 4 * N_train * C)


def softmax(bench, z, randn, gen):
    """Softmax in three passes and online, on (N, V)."""
    import torch
    nb, N, V = bench.nb, z.N, z.V
    s = randn(N, V, scale=4.0)
    sd = bench.dev(s)
    # One thread adds a row's V exponentials one after another, so float32 rounding grows with V: up to V * 2^-24
    # relative (3e-3 at V=50257; 1.5e-4 seen on an H200), where the online kernel's 32 lane sums stay near 1e-5.
    bench("softmax_forward (3 passes)", lambda: nb.softmax_forward(sd), lambda: torch.softmax(s, dim=-1),
          bench.max_error(V * 2.0**-24, 1e-7), nbytes=2 * 4 * N * V)
    bench("softmax_online", lambda: nb.softmax_online(sd), lambda: torch.softmax(s, dim=-1),
          bench.max_error(1e-5, 1e-7), nbytes=2 * 4 * N * V, target=faster)


def matmul(bench, z, randn, gen):
    """(N_train, C) @ (C, 4C) + bias, the MLP's first layer: naive, tiled, register-blocked."""
    import torch
    nb, dev, C, N_train = bench.nb, bench.dev, z.C, z.N_train
    a, wm, bm = randn(N_train, C), randn(C, 4 * C) * 0.05, randn(4 * C)
    flops = 2 * N_train * C * 4 * C
    ad, wmd, bmd = dev(a), dev(wm), dev(bm)
    for fn in (nb.matmul_naive, nb.matmul_tiled, nb.matmul_blocked):
        target = None
        if fn is nb.matmul_blocked:
            target = lambda ours, theirs, share: ("matmul >= 60% of cuBLAS SGEMM", theirs / ours >= 0.6)  # noqa: E731
        bench(fn.__name__, lambda fn=fn: fn(ad, wmd, bmd), lambda: torch.addmm(bm, a, wm),
              bench.max_error(1e-4, 1e-3), flops=flops, target=target)


def attention(bench, z, randn, gen):
    """Causal attention on qkv (B, T, 3C): composed of kernels, and fused."""
    import torch.nn.functional as F
    nb, B, T, C, NH = bench.nb, z.B, z.T, z.C, z.NH
    qkv = randn(B, T, 3 * C)
    qkvd = bench.dev(qkv)

    def sdpa():
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in qkv.split(C, dim=2))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
    attention_flops = 2 * 2 * B * NH * T * T * (C // NH) / 2  # two matmuls, half of them masked
    bench("attention_forward (composed)", lambda: nb.attention_forward(qkvd, NH)[0], sdpa,
          bench.max_error(1e-4, 1e-4), flops=attention_flops)
    bench("attention_fused", lambda: nb.attention_fused(qkvd, NH), sdpa,
          bench.max_error(1e-4, 1e-4), flops=attention_flops)


def classifier(bench, z, randn, gen):
    """The fused classifier: loss and dlogits from logits (N, Vp), the first V columns real."""
    import torch
    import torch.nn.functional as F
    nb, N, V, Vp = bench.nb, z.N, z.V, z.Vp
    logits = randn(N, Vp, scale=4.0)
    targets = torch.randint(0, V, (N,), device=bench.device, generator=gen)
    logitsd, targetsd = bench.dev(logits), bench.dev(targets.to(torch.int32))

    def torch_classifier():
        lg = logits[:, :V].detach().requires_grad_(True)
        loss = F.cross_entropy(lg, targets)
        return torch.autograd.grad(loss, lg)[0]
    bench("classifier_fused (loss + dlogits)", lambda: nb.classifier_fused(logitsd, targetsd, V=V)[1][:, :V],
          torch_classifier, bench.max_error(1e-4, 1e-9), nbytes=3 * 4 * N * Vp, target=faster)


def adamw(bench, z, randn, gen):
    """One AdamW step over GPT-2's 124M parameters, against PyTorch's fused AdamW."""
    import torch

    from llmc_core.cuda import cp
    nb, dev, n_params = bench.nb, bench.dev, z.n_params
    p, g = randn(n_params) * 0.02, randn(n_params) * 1e-3
    pd, md, vd, gd = dev(p.clone()), cp.zeros(n_params, dtype=cp.float32), cp.zeros(n_params, dtype=cp.float32), dev(g)
    param = torch.nn.Parameter(p.clone())
    param.grad = g
    optimizer = torch.optim.AdamW([param], lr=1e-4, weight_decay=0.0, fused=True)
    step = [0]

    def adamw_ours():
        step[0] += 1
        nb.adamw_update(pd, md, vd, gd, step[0], lr=1e-4, weight_decay=0.0)
        return pd

    def adamw_check(ours, theirs):
        return 0.0  # the kernel's values are checked against torch.optim.AdamW in tests/test_cuda_lesson_kernels.py
    bench(f"adamw ({n_params / 1e6:.0f}M params)", adamw_ours, lambda: optimizer.step(), adamw_check,
          nbytes=7 * 4 * n_params)


def encoder(bench, z, randn, gen):
    """The encoder forward, and its backward with atomics and deterministic."""
    import torch

    from llmc_core.cuda import cp
    nb, dev, B_train, T, C, V, Vp, N_train = bench.nb, bench.dev, z.B_train, z.T, z.C, z.V, z.Vp, z.N_train
    idx = torch.randint(0, V, (B_train, T), device=bench.device, generator=gen)
    wte, wpe = randn(Vp, C) * 0.02, randn(T, C) * 0.02
    idxd, wted, wped = dev(idx.to(torch.int32)), dev(wte), dev(wpe)
    bench("encoder_forward", lambda: nb.encoder_forward(idxd, wted, wped), lambda: wte[idx] + wpe[:T],
          bench.max_error(1e-6, 1e-6), nbytes=3 * 4 * N_train * C)
    de = randn(B_train, T, C)
    ded = dev(de)
    dwte, dwpe = cp.zeros((Vp, C), dtype=cp.float32), cp.zeros((T, C), dtype=cp.float32)

    def encoder_backward_torch():
        gw, gp = torch.zeros_like(wte), torch.zeros_like(wpe)
        gw.index_add_(0, idx.view(-1), de.view(N_train, C))
        gp[:T] += de.sum(dim=0)
        return gw

    def zeroed(fn):
        def run():
            dwte.fill(0), dwpe.fill(0)
            return fn(dwte, dwpe, ded, idxd)[0]
        return run
    bench("encoder_backward (atomics)", zeroed(nb.encoder_backward), encoder_backward_torch,
          bench.max_error(1e-5, 1e-5), nbytes=3 * 4 * N_train * C)
    bench("encoder_backward_deterministic", zeroed(nb.encoder_backward_deterministic), encoder_backward_torch,
          bench.max_error(1e-5, 1e-5), nbytes=3 * 4 * N_train * C)


if __name__ == "__main__":
    sys.exit(main())
