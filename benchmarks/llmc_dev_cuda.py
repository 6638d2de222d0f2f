"""llm.c's dev/cuda kernels, unmodified, on the CPU backend: each kernel against numpy.

    python benchmarks/llmc_dev_cuda.py --src DIR

DIR holds files of llm.c's dev/cuda collection (gelu_forward.cu, layernorm_forward.cu, ...,
common.h) as you downloaded them; this project does not ship them.  For each kernel listed in
CASES the script takes from its file, text unchanged, the kernel and what it needs: the file's
macros, types and device helpers, and those of common.h where the file includes it.  Host code
(main, launchers, cuBLAS setup, host globals) is left out; the host side a standalone file runs
(allocation, its launcher's grid and block, the CPU check) is written here instead, on small
inputs, with a numpy reference of its own.  nvcc includes <cuda_runtime.h> in every .cu file and
llm.c's files got <cuda_bf16.h> through the cuBLAS headers, so both are included first.
Where a file defines a name that common.h defines too (a file of one commit beside a common.h of
another), the file's definition is used, and common.h's declarations that use that name are left
out.  Prints a Markdown table; exits 1 if a kernel that ran failed or mismatched.
"""
import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmc_core.cuda import shim as cp  # noqa: E402
from llmc_core.cuda.source import IDENT_RE, mask_source, match_close, match_open  # noqa: E402

PRELUDE = "#include <cuda_runtime.h>\n#include <cuda_bf16.h>\n"
# Device-side headers a kernel file may include; other includes (stdio, cuBLAS, ...) serve host code.
DEVICE_INCLUDES = {"cuda_runtime.h", "cuda_bf16.h", "assert.h", "cassert", "float.h", "cfloat", "stdint.h",
                   "cooperative_groups.h", "cooperative_groups/reduce.h"}
TYPE_WORDS = ("typedef", "using", "struct", "class", "union", "enum", "namespace", "static_assert")


@dataclass
class Item:
    """One top-level piece of a source file, as written."""
    kind: str   # "pp" (preprocessor line), "device" (function), "type", "host" (function or variable)
    name: str
    text: str


def _item_end(code: str, i: int) -> int:
    """End of the declaration or definition starting at code[i]: its ';', or a function body's '}'."""
    j, n = i, len(code)
    while j < n:
        c = code[j]
        if c in "([":
            j = match_close(code, j, c, ")]"["([".index(c)]) + 1
        elif c == "{":
            end = match_close(code, j, "{", "}")
            head = code[i:j].rstrip()
            if head.endswith(")") or re.match(r"\s*(namespace\b|extern\s)", head):
                return end + 1
            j = end + 1   # a struct body or an initializer: the item ends at its ';'
        elif c == ";":
            return j + 1
        else:
            j += 1
    return n


def _function_name(head: str) -> str:
    """`template<...> __global__ void name(args)` -> name."""
    close = head.rstrip().rfind(")")
    m = re.search(r"([A-Za-z_]\w*)\s*$", head[:match_open(head, close, "(", ")")])
    return m.group(1) if m else ""


def _declared_name(code: str) -> str:
    """The name a type declaration introduces: `typedef Packed128<float> f128;` -> f128."""
    body = re.sub(r"^\s*template\s*<[^;{]*?>\s*", "", code)
    m = re.match(r"\s*(?:using|namespace)\s+([A-Za-z_]\w*)", body)
    if m:
        return m.group(1)
    if re.match(r"\s*typedef\b", body):
        m = re.search(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*;\s*$", body)
        return m.group(1) if m else ""
    m = re.match(r"\s*(?:struct|class|union|enum)\b(?:\s+(?:alignas|__align__)\s*\([^)]*\))?\s*([A-Za-z_]\w*)", body)
    return m.group(1) if m else ""


def top_level_items(src: str) -> list[Item]:
    """Split a CUDA C file into preprocessor lines, device functions, types and host code."""
    code = mask_source(src)
    items, i, n = [], 0, len(code)
    while i < n:
        if code[i].isspace() or code[i] == ";":
            i += 1
            continue
        if code[i] == "#":
            end = i
            while True:   # a directive runs on over lines ending in a backslash
                end = code.find("\n", end)
                end = n if end < 0 else end
                if end < n and code[i:end].rstrip().endswith("\\"):
                    end += 1
                    continue
                break
            define = re.match(r"\s*#\s*define\s+([A-Za-z_]\w*)", code[i:end])
            items.append(Item("pp", define.group(1) if define else "", src[i:end]))
            i = end
            continue
        end = _item_end(code, i)
        text, masked = src[i:end], code[i:end]
        device = re.search(r"\b__(global|device|constant)__\b", masked) is not None
        if masked.rstrip().endswith("}") and not re.match(r"\s*(namespace|extern)\b", masked):
            head = masked[:masked.find("{")]
            items.append(Item("device" if device else "host", _function_name(head), text))
        elif re.match(rf"\s*(template\s*<[^;{{]*?>\s*)?({'|'.join(TYPE_WORDS)})\b", masked):
            items.append(Item("type", _declared_name(masked), text))
        elif re.match(r"\s*(static\s+)?constexpr\b", masked):   # a compile-time constant: device code may use it
            name = re.search(r"([A-Za-z_]\w*)\s*(=|\{|\[)", masked)
            items.append(Item("type", name.group(1) if name else "", text))
        else:   # a variable or a prototype: __device__/__constant__ ones belong to the kernels
            items.append(Item("type" if device else "host", "", text))
        i = end
    return items


def _defined_names(items: list[Item]) -> set[str]:
    return {it.name for it in items if it.kind != "host" and it.name}


def _replaced(item: Item, own: set[str]) -> bool:
    """Whether an included item defines a name the including file defines, or (not a directive) uses one."""
    if item.name in own:
        return True
    return item.kind != "pp" and not own.isdisjoint(IDENT_RE.findall(mask_source(item.text)))


def expand_includes(path: Path) -> list[Item]:
    """The file's items with `#include "common.h"` replaced by that file's items.

    A name (type, function, macro, constant) the file defines itself is left out of common.h's items,
    and so are common.h's declarations that use such a name (they were written for its own definition).
    """
    items = top_level_items(path.read_text(encoding="utf-8"))
    own = _defined_names(items)
    out = []
    for it in items:
        m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', it.text)
        if not m:
            out.append(it)
        elif m.group(1) == '"':
            included = path.parent / m.group(2)
            if not included.exists():
                raise FileNotFoundError(f"{path.name} includes \"{m.group(2)}\", which is not in {path.parent}; "
                                        "put llm.c's dev/cuda/common.h beside the kernel files")
            out += [x for x in expand_includes(included) if not _replaced(x, own)]
        elif m.group(2) in DEVICE_INCLUDES:
            out.append(it)
    return out


def kernel_source(path: Path, kernel: str) -> str:
    """The kernel `kernel` of file `path`, with every macro and type and the device functions it calls."""
    items = [it for it in expand_includes(path) if it.kind != "host"]
    if not any(it.kind == "device" and it.name == kernel and "__global__" in mask_source(it.text) for it in items):
        raise ValueError(f"{path.name} has no __global__ function {kernel!r} (is the file of another llm.c version?)")
    functions = {}
    for it in items:
        if it.kind == "device":
            functions.setdefault(it.name, []).append(it)
    # Device functions reachable from the kernel, and from the types (their methods may call some).
    todo = [kernel] + [w for it in items if it.kind == "type" for w in IDENT_RE.findall(mask_source(it.text))]
    wanted = set()
    while todo:
        name = todo.pop()
        if name in wanted or name not in functions:
            continue
        wanted.add(name)
        todo += [w for it in functions[name] for w in IDENT_RE.findall(mask_source(it.text))]
    kept = [it.text for it in items if it.kind != "device" or it.name in wanted]
    return PRELUDE + "\n".join(kept) + "\n"


# ---------------------------------------------------------------- numpy side

def bf16(x) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest even), as the uint16 bits a floatX* points to."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def unbf16(bits) -> np.ndarray:
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def gelu_grad(x):
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)
    return 0.5 * (1 + np.tanh(u)) + 0.5 * x * (1 - np.tanh(u) ** 2) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x ** 2)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def layernorm(x):
    """(normalised x, mean, rstd) of rows of x, in float64."""
    m = x.mean(-1)
    rstd = 1 / np.sqrt(x.var(-1) + 1e-5)
    return (x - m[:, None]) * rstd[:, None], m, rstd


F32 = (1e-5, 1e-4)     # (atol, rtol) for float32 kernels: a few roundings per output
BF16 = (1e-2, 1e-2)    # bfloat16 outputs carry 8 bits of mantissa (llm.c's own check uses 1e-2)
BF16_SUMS = (1e-1, 2e-2)   # a bf16 sum of up to 4 blocks' partials, each addition rounded to bf16
RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def compare(pairs, tol):
    """Max |got - want| over (got, want) pairs, and whether every element is within atol + rtol * |want|."""
    atol, rtol = tol
    worst, ok = 0.0, True
    for got, want in pairs:
        diff = np.abs(np.asarray(got, np.float64) - want)
        worst = max(worst, float(diff.max()))
        ok &= bool((diff <= atol + rtol * np.abs(want)).all())
    return worst, ok


def ceil_div(a, b):
    return (a + b - 1) // b


B, T, C, V = 2, 8, 64, 50   # small GPT-2 shapes; C is a multiple of 8 so 128-bit bf16 loads fit rows


def gelu_forward(per_thread):
    def check(run):
        n, block = B * T * C, 128
        x, out = bf16(randn(n)), cp.zeros(n, cp.uint16)
        run((ceil_div(n, block * per_thread),), (block,), (out, cp.asarray(x), np.int32(n)))
        return compare([(unbf16(cp.asnumpy(out)), gelu(unbf16(x).astype(np.float64)))], BF16)
    return check


def gelu_backward(per_thread):
    def check(run):
        n, block = B * T * C, 128
        x, dout, dinp = bf16(randn(n)), bf16(randn(n)), cp.zeros(n, cp.uint16)
        run((ceil_div(n, block * per_thread),), (block,), (dinp, cp.asarray(x), cp.asarray(dout), np.int32(n)))
        want = gelu_grad(unbf16(x).astype(np.float64)) * unbf16(dout)
        return compare([(unbf16(cp.asnumpy(dinp)), want)], BF16)
    return check


def residual_forward(grid_elements):
    def check(run):
        n, block = B * T * C, 128
        a, b, out = randn(n), randn(n), cp.zeros(n, cp.float32)
        run((ceil_div(grid_elements(n), block),), (block,), (out, cp.asarray(a), cp.asarray(b), np.int32(n)))
        return compare([(cp.asnumpy(out), a.astype(np.float64) + b)], F32)
    return check


def encoder_forward(threads):
    def check(run):
        inp = RNG.integers(0, V, (B, T)).astype(np.int32)
        wte, wpe, out = bf16(randn(V, C)), bf16(randn(T, C)), cp.zeros((B, T, C), cp.uint16)
        run((ceil_div(threads, 64),), (64,), (out, cp.asarray(inp), cp.asarray(wte), cp.asarray(wpe),
                                             np.int32(B), np.int32(T), np.int32(C)))
        want = unbf16(wte).astype(np.float64)[inp] + unbf16(wpe)[None]   # (B, T, C)
        return compare([(unbf16(cp.asnumpy(out)), want)], BF16)
    return check


def encoder_backward(threads):
    def check(run):
        inp = RNG.integers(0, 5, (B, T)).astype(np.int32)   # few distinct tokens: rows of dwte collide
        dout = randn(B, T, C)
        dwte, dwpe = cp.zeros((V, C), cp.float32), cp.zeros((T, C), cp.float32)
        run((ceil_div(threads, 64),), (64,), (dwte, dwpe, cp.asarray(dout), cp.asarray(inp),
                                             np.int32(B), np.int32(T), np.int32(C)))
        want_wte = np.zeros((V, C))
        np.add.at(want_wte, inp.ravel(), dout.reshape(-1, C).astype(np.float64))
        return compare([(cp.asnumpy(dwte), want_wte), (cp.asnumpy(dwpe), dout.sum(0, dtype=np.float64))], F32)
    return check


def softmax_forward(grid_of_rows, block, shared_floats=0):
    def check(run):
        n, c = 16, 100
        x, out = 3 * randn(n, c), cp.zeros((n, c), cp.float32)
        run((grid_of_rows(n, block),), (block,), (out, cp.asarray(x), np.int32(n), np.int32(c)),
            shared_mem=4 * shared_floats)
        return compare([(cp.asnumpy(out), softmax(x.astype(np.float64)))], F32)
    return check


LN_ROWS, LN_C = B * T, 96


def layernorm_inputs():
    x, w, b = randn(LN_ROWS, LN_C), randn(LN_C), randn(LN_C)
    norm, mean, rstd = layernorm(x.astype(np.float64))
    return x, w, b, norm * w + b, mean, rstd


def layernorm_forward(grid, block, shared_bytes=0):
    def check(run):
        x, w, b, want, mean, rstd = layernorm_inputs()
        out, m, s = cp.zeros((LN_ROWS, LN_C), cp.float32), cp.zeros(LN_ROWS, cp.float32), cp.zeros(LN_ROWS, cp.float32)
        run((grid,), (block,), (out, m, s, cp.asarray(x), cp.asarray(w), cp.asarray(b), np.int32(LN_ROWS),
                                np.int32(LN_C)), shared_mem=shared_bytes)
        return compare([(cp.asnumpy(out), want), (cp.asnumpy(m), mean), (cp.asnumpy(s), rstd)], F32)
    return check


def layernorm_mean(run):
    x, _, _, _, mean, _ = layernorm_inputs()
    m = cp.zeros(LN_ROWS, cp.float32)
    run((LN_ROWS,), (64,), (m, cp.asarray(x), np.int32(LN_ROWS), np.int32(LN_C), np.int32(64)), shared_mem=64 * 4)
    return compare([(cp.asnumpy(m), mean)], F32)


def layernorm_rstd(run):
    x, _, _, _, mean, rstd = layernorm_inputs()
    s = cp.zeros(LN_ROWS, cp.float32)
    run((LN_ROWS,), (64,), (s, cp.asarray(x), cp.asarray(mean.astype(np.float32)), np.int32(LN_ROWS),
                            np.int32(LN_C), np.int32(64)), shared_mem=64 * 4)
    return compare([(cp.asnumpy(s), rstd)], F32)


def layernorm_normalization(run):
    x, w, b, want, mean, rstd = layernorm_inputs()
    out = cp.zeros((LN_ROWS, LN_C), cp.float32)
    # no bounds check in this kernel: the launcher's grid covers B*T*C exactly (a multiple of 256 here)
    run((LN_ROWS * LN_C // 256,), (256,), (out, cp.asarray(x), cp.asarray(mean.astype(np.float32)),
                                          cp.asarray(rstd.astype(np.float32)), cp.asarray(w), cp.asarray(b),
                                          np.int32(B), np.int32(T), np.int32(LN_C)))
    return compare([(cp.asnumpy(out), want)], F32)


def crossentropy_forward(run):
    probs = softmax(randn(B, T, V).astype(np.float64)).astype(np.float32)
    targets = RNG.integers(0, V, (B, T)).astype(np.int32)
    losses = cp.zeros((B, T), cp.float32)
    run((1,), (64,), (losses, cp.asarray(probs), cp.asarray(targets), np.int32(B), np.int32(T), np.int32(V)))
    want = -np.log(np.take_along_axis(probs.astype(np.float64), targets[..., None], -1))[..., 0]
    return compare([(cp.asnumpy(losses), want)], F32)


def crossentropy_softmax_backward(run):
    probs = softmax(randn(B, T, V).astype(np.float64)).astype(np.float32)
    targets = RNG.integers(0, V, (B, T)).astype(np.int32)
    dlosses, start = randn(B, T), randn(B, T, V)
    dlogits = cp.asarray(start)
    run((ceil_div(B * T * V, 128),), (128,), (dlogits, cp.asarray(dlosses), cp.asarray(probs), cp.asarray(targets),
                                             np.int32(B), np.int32(T), np.int32(V)))
    onehot = np.eye(V)[targets]
    want = start + (probs - onehot) * dlosses[..., None]   # the gradient accumulates into dlogits
    return compare([(cp.asnumpy(dlogits), want)], F32)


def adamw(shared_bytes=0):
    def check(run):
        n, lr, b1, b2, eps, wd, t = 1000, 1e-3, 0.9, 0.999, 1e-8, 0.01, 10
        p, g, m, v = randn(n), randn(n), randn(n), RNG.random(n).astype(np.float32)
        dp, dm, dv = cp.asarray(p), cp.asarray(m), cp.asarray(v)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        f = np.float32
        run((ceil_div(n, 512),), (512,), (dp, cp.asarray(g), dm, dv, np.int64(n), f(lr), f(b1), f(b2), f(c1), f(c2),
                                         f(eps), f(wd)), shared_mem=shared_bytes)
        m2 = b1 * m.astype(np.float64) + (1 - b1) * g
        v2 = b2 * v.astype(np.float64) + (1 - b2) * g.astype(np.float64) ** 2
        p2 = p - lr * (m2 / c1 / (np.sqrt(v2 / c2) + eps) + wd * p)
        return compare([(cp.asnumpy(dp), p2), (cp.asnumpy(dm), m2), (cp.asnumpy(dv), v2)], F32)
    return check


def global_norm(per_block):
    def check(run):
        n, grid, block = 5000, 4, 128
        x = bf16(0.1 * randn(n))
        out = cp.zeros(grid, cp.float32)
        run((grid,), (block,), (out, cp.asarray(x), np.uint64(n)))
        squares = unbf16(x).astype(np.float64) ** 2
        if per_block:   # each block writes its partial sum; element i is read by block (i mod grid*block) / block
            want = np.bincount(np.arange(n) % (grid * block) // block, squares, minlength=grid)
            return compare([(cp.asnumpy(out), want)], F32)
        return compare([(cp.asnumpy(out)[:1], squares.sum(keepdims=True))], F32)
    return check


def global_norm_aggregate(run):
    partial = RNG.random(1024).astype(np.float32)
    out = cp.asarray(partial)
    run((1,), (1024,), (out, np.uint64(100)))
    return compare([(cp.asnumpy(out)[:1], partial[:100].astype(np.float64).sum(keepdims=True))], F32)


def fused_classifier(grid, with_probs_arg, dlosses_given=True):
    def check(run):
        n, padded = B * T, 64   # rows of logits are padded from V to P = 64 columns, as llm.c pads the vocabulary
        logits = np.full((n, padded), np.nan, np.float32)   # the padding is never read (llm.c fills it with 0xff)
        logits[:, :V] = 3 * randn(n, V)
        targets = RNG.integers(0, V, n).astype(np.int32)
        dlosses = randn(n) if dlosses_given else None
        dlogits, losses = cp.zeros((n, padded), cp.float32), cp.zeros(n, cp.float32)
        inputs = (cp.asarray(logits), None if dlosses is None else cp.asarray(dlosses), cp.asarray(targets))
        sizes = (np.int32(B), np.int32(T), np.int32(V), np.int32(padded))
        outputs = (dlogits, losses, None) if with_probs_arg else (dlogits, losses)
        run((grid,), (128,), outputs + inputs + sizes)
        probs = softmax(logits[:, :V].astype(np.float64))
        dloss = dlosses[:, None] if dlosses is not None else 1.0 / n   # the kernels' default without dlosses
        want_dlogits = (probs - np.eye(V)[targets]) * dloss
        want_losses = -np.log(probs[np.arange(n), targets])
        return compare([(cp.asnumpy(losses), want_losses), (cp.asnumpy(dlogits)[:, :V], want_dlogits)], F32)
    return check


def layernorm_backward_reference(dout, x, w, mean, rstd):
    """(dinp, dweight, dbias) of rows x (N, C) normalised with the given mean and rstd (N,), in float64."""
    norm = (x - mean[:, None]) * rstd[:, None]
    dnorm = w * dout
    dinp = (dnorm - dnorm.mean(1, keepdims=True) - norm * (dnorm * norm).mean(1, keepdims=True)) * rstd[:, None]
    return dinp, (norm * dout).sum(0), dout.sum(0)


def layernorm_backward(grid, block, bf16_params=None, scratch_floats=None):
    """A float32 kernel, or (bf16_params set) a bf16 one whose dweight/dbias are checked to that tolerance."""
    def check(run):
        n, c = B * T, 64
        x, w, dout = randn(n, c), randn(c), randn(n, c)
        _, mean, rstd = layernorm(x.astype(np.float64))
        as_kernel = (lambda a: bf16(a)) if bf16_params else (lambda a: np.asarray(a, np.float32))
        as_float = (lambda a: unbf16(a).astype(np.float64)) if bf16_params else (lambda a: a.astype(np.float64))
        inputs = [as_kernel(a) for a in (dout, x, w, mean, rstd)]
        want = layernorm_backward_reference(*[as_float(a) for a in inputs])   # from the values the kernel reads
        outs = [cp.zeros(shape, cp.uint16 if bf16_params else cp.float32) for shape in ((n, c), c, c)]
        scratch = [] if scratch_floats is None else [cp.zeros(scratch_floats(grid, c), cp.float32)]
        shared = 4 * (2 * c + (scratch_floats is not None))
        run((grid,), (block,), (*outs, *scratch, *map(cp.asarray, inputs), np.int32(B), np.int32(T), np.int32(c)),
            shared_mem=shared)
        got = [as_float(cp.asnumpy(o)) for o in outs]
        dinp_err, dinp_ok = compare([(got[0], want[0])], BF16 if bf16_params else F32)
        params_err, params_ok = compare(list(zip(got[1:], want[1:])), bf16_params or F32)
        return max(dinp_err, params_err), dinp_ok and params_ok
    return check


def permute(run):
    dims = (3, 5, 4, 8)
    x, out = randn(*dims), cp.zeros(int(np.prod(dims)), cp.float32)
    run((ceil_div(x.size, 256),), (256,), (cp.asarray(x), out, *map(np.int32, dims)))
    return compare([(cp.asnumpy(out), x.transpose(3, 2, 0, 1).ravel())], (0, 0))   # a copy: exact


@dataclass
class Case:
    file: str
    kernel: str     # a name, or a template instance such as "norm_kernel1<floatX>"
    check: object   # check(run) -> (max error, ok); run(grid, block, args, shared_mem=0) launches the kernel


def rows_per_thread(n, block):
    return ceil_div(n, block)


def row_per_block(n, block):
    return n


CASES = [
    Case("gelu_forward.cu", "gelu_forward_kernel1", gelu_forward(1)),
    Case("gelu_forward.cu", "gelu_forward_kernel2", gelu_forward(8)),
    Case("gelu_backward.cu", "gelu_backward1", gelu_backward(1)),
    Case("gelu_backward.cu", "gelu_backward2", gelu_backward(8)),
    Case("residual_forward.cu", "residual_forward_kernel1", residual_forward(lambda n: n)),
    Case("residual_forward.cu", "residual_forward_kernel2", residual_forward(lambda n: n // 2)),
    Case("encoder_forward.cu", "encoder_forward_kernel1", encoder_forward(B * T)),
    Case("encoder_forward.cu", "encoder_forward_kernel2", encoder_forward(B * T * C)),
    Case("encoder_forward.cu", "encoder_forward_kernel3", encoder_forward(B * T * C // 8)),
    Case("encoder_backward.cu", "encoder_backward_kernel1", encoder_backward(B * T * C)),
    Case("encoder_backward.cu", "encoder_backward_kernel2", encoder_backward(C)),
    Case("softmax_forward.cu", "softmax_forward_kernel1", softmax_forward(rows_per_thread, 32)),
    Case("softmax_forward.cu", "softmax_forward_kernel2", softmax_forward(row_per_block, 64, 64)),
    Case("softmax_forward.cu", "softmax_forward_kernel3", softmax_forward(row_per_block, 32, 32)),
    Case("softmax_forward.cu", "softmax_forward_kernel4", softmax_forward(row_per_block, 128, 2 * 128 // 32)),
    Case("softmax_forward.cu", "softmax_forward_online_kernel1", softmax_forward(rows_per_thread, 32)),
    Case("layernorm_forward.cu", "layernorm_forward_kernel1", layernorm_forward(1, 32)),
    Case("layernorm_forward.cu", "mean_kernel", layernorm_mean),
    Case("layernorm_forward.cu", "rstd_kernel", layernorm_rstd),
    Case("layernorm_forward.cu", "normalization_kernel", layernorm_normalization),
    Case("layernorm_forward.cu", "layernorm_forward_kernel3", layernorm_forward(LN_ROWS * 32 // 128, 128)),
    Case("layernorm_forward.cu", "layernorm_forward_kernel4", layernorm_forward(LN_ROWS * 32 // 128, 128)),
    Case("layernorm_forward.cu", "layernorm_forward_kernel5", layernorm_forward(LN_ROWS, 128)),
    Case("layernorm_forward.cu", "layernorm_forward_kernel6",
         layernorm_forward(LN_ROWS * 32 // 128, 128, LN_C * 4 * (128 // 32))),
    Case("crossentropy_forward.cu", "crossentropy_forward_kernel1", crossentropy_forward),
    Case("crossentropy_softmax_backward.cu", "crossentropy_softmax_backward_kernel1", crossentropy_softmax_backward),
    Case("adamw.cu", "adamw_kernel1", adamw(4 * 512 * 4)),
    Case("adamw.cu", "adamw_kernel2", adamw()),
    Case("adamw.cu", "adamw_kernel3", adamw()),
    Case("global_norm.cu", "norm_kernel1<floatX>", global_norm(per_block=False)),
    Case("global_norm.cu", "norm_kernel2<floatX>", global_norm(per_block=False)),
    Case("global_norm.cu", "norm_kernel3<floatX>", global_norm(per_block=False)),
    Case("global_norm.cu", "norm_kernel4<floatX>", global_norm(per_block=True)),
    Case("global_norm.cu", "global_norm_aggregate_kernel", global_norm_aggregate),
    Case("classifier_fused.cu", "fused_classifier_kernel1", fused_classifier(B * T // 4, False)),
    Case("classifier_fused.cu", "fused_classifier_kernel2", fused_classifier(B * T, True)),
    Case("classifier_fused.cu", "fused_classifier_kernel3", fused_classifier(B * T, True, dlosses_given=False)),
    Case("classifier_fused.cu", "fused_classifier_kernel4", fused_classifier(B * T, True)),
    Case("classifier_fused.cu", "fused_classifier_kernel5<true,false>", fused_classifier(B * T, True)),
    Case("permute.cu", "permute_kernel", permute),
    Case("layernorm_backward.cu", "layernorm_backward_kernel1", layernorm_backward(1, 32)),
    Case("layernorm_backward.cu", "layernorm_backward_kernel2<floatX, floatX, floatX, floatX>",
         layernorm_backward(B * T * 32 // 128, 128, BF16_SUMS)),
    Case("layernorm_backward.cu", "layernorm_backward_kernel3<floatX, floatX, floatX, floatX>",
         layernorm_backward(2, 128, BF16_SUMS)),
    Case("layernorm_backward.cu", "layernorm_backward_kernel4<floatX, floatX, floatX, floatX>",
         layernorm_backward(2, 128, BF16_SUMS)),
    Case("layernorm_backward.cu", "layernorm_backward_kernel5<floatX, floatX, floatX, floatX>",
         layernorm_backward(2, 128, BF16, scratch_floats=lambda grid, c: grid * 2 * c + 1)),
    Case("layernorm_backward.cu", "layernorm_backward_kernel6<floatX, floatX, floatX, floatX>",
         layernorm_backward(2, 128, BF16, scratch_floats=lambda grid, c: 2 * c + 1)),
]


def run_case(src_dir: Path, case: Case) -> tuple[str, str]:
    """(runs unmodified?, max error) for the table."""
    path = src_dir / case.file
    if not path.exists():
        return "not run: file not in --src", ""
    try:
        text = kernel_source(path, case.kernel.split("<")[0])
        kernel = cp.RawModule(code=text, name_expressions=[case.kernel]).get_function(case.kernel)
        err, ok = case.check(lambda grid, block, args, shared_mem=0: kernel(grid, block, args, shared_mem=shared_mem))
    except (RuntimeError, ValueError, TypeError, FileNotFoundError) as e:   # CompileError, CudaEmulatorError, ...
        return "no: " + " ".join(str(e).split())[:160].replace("|", "\\|"), ""
    return ("yes" if ok else "no: differs from numpy"), f"{err:.1e}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, type=Path, help="folder with llm.c's dev/cuda .cu files and common.h")
    p.add_argument("--only", default="", help="run only kernels whose file or name contains this text")
    args = p.parse_args(argv)
    if not args.src.is_dir():
        raise SystemExit(f"--src {args.src}: not a folder; pass the folder holding llm.c's dev/cuda files")
    print("| kernel | file | runs unmodified? | max error |\n| --- | --- | --- | --- |")
    results = []
    for case in CASES:
        if args.only in case.file or args.only in case.kernel:
            status, err = run_case(args.src, case)
            results.append(status)
            print(f"| `{case.kernel}` | {case.file} | {status} | {err} |", flush=True)
    ran = [r for r in results if not r.startswith("not run")]
    good = sum(r == "yes" for r in ran)
    print(f"\n{good} of {len(ran)} kernels run unmodified and match numpy"
          + (f" ({100 * good / len(ran):.0f}%)" if ran else "")
          + (f"; {len(results) - len(ran)} not run (file missing)" if len(ran) < len(results) else ""))
    return 0 if good == len(ran) else 1


if __name__ == "__main__":
    sys.exit(main())
