"""Reading CUDA C source for the emulator: kernels, parameters, __shared__ rewriting, sync use.

Everything here works on a *masked* copy of the source (comments and string contents replaced
by spaces, same length, same newlines), so positions found in it are positions in the original.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

SYNC_RE = re.compile(
    r"\b(__syncthreads\w*|__syncwarp|__shfl\w*|__ballot_sync|__any_sync|__all_sync|__activemask"
    r"|cooperative_groups|this_thread_block|tiled_partition)\b")
IDENT_RE = re.compile(r"[A-Za-z_]\w*")


@dataclass
class Param:
    name: str
    type: str  # as written, e.g. "const float* __restrict__"


@dataclass
class Kernel:
    name: str
    params: list[Param]
    is_template: bool
    extern_c: bool
    line: int
    needs_fibers: bool = True


@dataclass
class ParsedSource:
    text: str                      # rewritten source, same line count as the original
    kernels: dict[str, Kernel]
    globals: list[str]             # __device__ / __constant__ variables at file scope
    shared_decls: int = 0
    sync_outside_functions: bool = False
    notes: list[str] = field(default_factory=list)


def mask_source(src: str) -> str:
    """Replace comments and the contents of string/char literals with spaces, keeping newlines."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def match_close(code: str, i: int, open_c: str, close_c: str) -> int:
    """Index of the bracket closing the one at code[i]."""
    return _matching(code, i, open_c, close_c, +1)


def match_open(code: str, i: int, open_c: str, close_c: str) -> int:
    """Index of the bracket opening the one at code[i]."""
    return _matching(code, i, open_c, close_c, -1)


def _matching(code: str, i: int, open_c: str, close_c: str, step: int) -> int:
    """Walk from code[i] in direction `step` to the bracket that balances it."""
    inward, outward = (open_c, close_c) if step > 0 else (close_c, open_c)
    depth = 0
    for j in range(i, len(code) if step > 0 else -1, step):
        if code[j] == inward:
            depth += 1
        elif code[j] == outward:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {code[i]!r} at offset {i} in the kernel source")


def line_of(code: str, pos: int) -> int:
    return code.count("\n", 0, pos) + 1


def statement_start(code: str, pos: int) -> int:
    j = pos - 1
    while j >= 0 and code[j] not in ";{}":
        if code[j] == "\n":  # a preprocessor line ends a statement too
            k = code.rfind("\n", 0, j) + 1
            if code[k:j].lstrip().startswith("#"):
                break
        j -= 1
    return j + 1


def function_bodies(code: str, src: str) -> list[tuple[str, int, int, int]]:
    """(name, signature open paren, body start, body end) of every function definition.

    Braces of `extern "C" {` and `namespace x {` are transparent, so functions inside count.
    """
    found = []
    stack = []   # True for a transparent block
    i = 0
    n = len(code)
    while i < n:
        c = code[i]
        if c == "{":
            head = code[statement_start(code, i):i]
            orig_head = src[statement_start(code, i):i]
            if re.search(r'\bextern\s*"C"\s*$', orig_head) or re.match(r"\s*(inline\s+)?namespace\b", head):
                stack.append(True)
                i += 1
                continue
            j = i - 1
            while j >= 0 and code[j] in " \t\r\n":
                j -= 1
            # skip trailing qualifiers such as const / noexcept / override
            while True:
                wm = re.search(r"([A-Za-z_]\w*)\s*$", code[:j + 1])
                if not wm or wm.group(1) not in ("const", "noexcept", "override", "final", "volatile"):
                    break
                j = wm.start() - 1
                while j >= 0 and code[j] in " \t\r\n":
                    j -= 1
            if not stack or all(stack):
                if j >= 0 and code[j] == ")":
                    p = match_open(code, j, "(", ")")
                    m = re.search(r"([A-Za-z_]\w*)\s*$", code[:p])
                    end = match_close(code, i, "{", "}")
                    if m and m.group(1) not in ("if", "for", "while", "switch", "return", "sizeof"):
                        found.append((m.group(1), p, i, end))
                    i = end + 1
                    continue
                end = match_close(code, i, "{", "}")   # a struct, enum or initializer
                i = end + 1
                continue
            stack.append(False)
        elif c == "}":
            if stack:
                stack.pop()
        i += 1
    return found


def split_top_level(text: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "(<[{":
            depth += 1
        elif ch in ")>]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_params(text: str) -> list[Param]:
    params = []
    for i, part in enumerate(split_top_level(text)):
        if part == "void":
            continue
        part = part.split("=")[0].strip()
        m = re.search(r"([A-Za-z_]\w*)\s*$", part)
        type_words = {"int", "float", "double", "char", "short", "long", "unsigned", "signed", "bool", "const",
                      "__restrict__", "__restrict", "volatile", "size_t"}
        if m and m.group(1) not in type_words and part[:m.start()].strip():
            params.append(Param(m.group(1), part[:m.start()].strip()))
        else:
            params.append(Param(f"arg{i}", part))
    return params


def _rewrite_shared(src: str, code: str, bodies, line_offset: int) -> tuple[str, int]:
    """Turn each function-scope __shared__ declaration into a reference into the block's arena."""
    out = list(src)
    count = 0
    for m in re.finditer(r"\b__shared__\b", code):
        start = statement_start(code, m.start())
        while code[start] in " \t\r\n":
            start += 1
        end = code.find(";", m.end())
        if end < 0:
            raise ValueError(f"line {line_of(code, m.start())}: a __shared__ declaration without ';'")
        line = line_of(code, m.start()) + line_offset
        inside = any(b0 < m.start() < b1 for _, _, b0, b1 in bodies)
        if not inside:
            raise ValueError(
                f"line {line}: __shared__ at file scope is not supported by the CPU emulator; "
                "declare the shared array inside the kernel that uses it")
        decl = code[start:end]
        is_extern = re.search(r"\bextern\b", decl) is not None
        align = 16
        am = re.search(r"__align__\s*\(\s*(\d+)\s*\)|alignas\s*\(\s*(\d+)\s*\)", decl)
        if am:
            align = max(align, int(am.group(1) or am.group(2)))
        decl = re.sub(r"__align__\s*\([^)]*\)|alignas\s*\([^)]*\)|\bextern\b|\b__shared__\b|\bstatic\b", " ", decl)
        declarators = split_top_level(decl)
        first = re.match(r"^(?P<type>.*?)(?P<ptr>[*&\s]*)\b(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\]]*\]\s*)*)$",
                         declarators[0].strip(), re.S)
        if not first or not first.group("type").strip():
            raise ValueError(f"line {line}: cannot read this __shared__ declaration: {src[start:end].strip()!r}")
        base = " ".join(first.group("type").split())
        pieces = []
        for k, d in enumerate(declarators):
            dm = first if k == 0 else re.match(
                r"^(?P<ptr>[*&\s]*)\b(?P<name>[A-Za-z_]\w*)\s*(?P<dims>(?:\[[^\]]*\]\s*)*)$", d.strip())
            if not dm:
                raise ValueError(f"line {line}: cannot read this __shared__ declarator: {d.strip()!r}")
            t = f"__llmc_shared_{count}_t"
            ptr = dm.group("ptr").replace(" ", "")
            dims = " ".join(dm.group("dims").split())
            if is_extern:
                rest = re.sub(r"^\[\s*\]", "", dims)
                pieces.append(f"typedef {base}{ptr} {t}{rest}; "
                              f"{t}* const {dm.group('name')} = static_cast<{t}*>(cuemu_shared_dynamic());")
            else:
                slot = f"__llmc_shared_{count}_slot"
                # The slot id is a static of a lambda: one per template instance, and its one-time
                # initialisation is kept out of the profiler's branch counts (LLMC_NO_COVERAGE).
                pieces.append(f"typedef {base}{ptr} {t}{dims}; const int {slot} = []() LLMC_NO_COVERAGE "
                              f"{{ static const int id = cuemu_shared_slot(); return id; }}(); "
                              f"{t}& {dm.group('name')} = *static_cast<{t}*>(cuemu_shared_static({slot}, "
                              f"sizeof({t}), alignof({t}) > {align} ? alignof({t}) : {align}, {line}));")
            count += 1
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = ""
        out[start] = " ".join(pieces)
    return "".join(out), count


def parse(src: str, line_offset: int = 0) -> ParsedSource:
    """Find kernels and rewrite __shared__ declarations; the result keeps every line where it was."""
    code = mask_source(src)
    bodies = function_bodies(code, src)
    kernels = find_kernels(code, src, line_offset)
    outside = code
    for _, _, b0, b1 in sorted(bodies, key=lambda b: -b[2]):
        outside = outside[:b0] + " " * (b1 - b0) + outside[b1:]
    sync_outside = SYNC_RE.search(outside) is not None or includes_unknown_header(src)
    reaching = reaching_sync(kernels, code, bodies)
    for k in kernels.values():
        k.needs_fibers = sync_outside or k.name in reaching
    text, count = _rewrite_shared(src, code, bodies, line_offset)
    # CUDA's `#pragma unroll [N]` means the same as GCC's `#pragma GCC unroll N` (full unroll if no N)
    text = re.sub(r"^(\s*)#\s*pragma\s+unroll\s*(\d*)\s*$",
                  lambda m: f"{m.group(1)}#pragma GCC unroll {m.group(2) or 64}", text, flags=re.M)
    return ParsedSource(text=text, kernels=kernels, globals=device_globals(outside), shared_decls=count,
                        sync_outside_functions=sync_outside)


def find_kernels(code: str, src: str, line_offset: int) -> dict:
    """{name: Kernel} of the __global__ functions defined (not only declared) in `src` (`code`: it masked)."""
    extern_blocks = []
    for m in re.finditer(r'\bextern\s*"\s*"\s*\{', code):
        if src[m.start():m.end()].replace(" ", "").startswith('extern"C"'):
            brace = m.end() - 1
            extern_blocks.append((brace, match_close(code, brace, "{", "}")))
    kernels: dict[str, Kernel] = {}
    for m in re.finditer(r"\b__global__\b", code):
        paren = code.find("(", m.end())
        # skip __launch_bounds__(...) between __global__ and the name
        head_end = paren
        while True:
            name_m = re.search(r"([A-Za-z_]\w*)\s*$", code[m.end():head_end])
            if name_m and name_m.group(1) == "__launch_bounds__":
                close = match_close(code, head_end, "(", ")")
                head_end = code.find("(", close)
                paren = head_end
                continue
            break
        name_m = re.search(r"([A-Za-z_]\w*)\s*$", code[m.end():paren])
        if not name_m:
            continue
        close = match_close(code, paren, "(", ")")
        start = statement_start(code, m.start())
        prefix = src[start:m.start()]
        is_template = re.search(r"\btemplate\s*<", code[start:m.start()]) is not None
        extern_c = re.search(r'\bextern\s*"C"', prefix) is not None or any(a < m.start() < b for a, b in extern_blocks)
        name = name_m.group(1)
        after = code[close + 1:close + 200].lstrip()
        if not after.startswith("{"):
            continue  # a declaration; the definition follows elsewhere
        kernels[name] = Kernel(name, parse_params(code[paren + 1:close]), is_template, extern_c,
                               line_of(code, m.start()) + line_offset)
    return kernels


def includes_unknown_header(src: str) -> bool:
    """True when `src` includes a header we cannot see: it may hold device functions that synchronise."""
    for inc in re.finditer(r"^\s*#\s*include\s*[<\"]([^>\"]+)[>\"]", src, flags=re.M):
        if inc.group(1) not in ("cuda_bf16.h", "cuda_fp16.h", "cuda_runtime.h", "stdint.h", "cstdint", "assert.h",
                                "cassert", "string.h", "cstring", "float.h", "cfloat"):
            return True
    return False


def reaching_sync(kernels, code: str, bodies) -> set:
    """The kernels that can reach a sync primitive, directly or through the functions they call."""
    names = {}
    for fname, _, b0, b1 in bodies:
        names.setdefault(fname, []).append(code[b0:b1])
    syncs = {f for f, texts in names.items() if any(SYNC_RE.search(t) for t in texts)}
    calls = {f: {w for t in texts for w in IDENT_RE.findall(t) if w in names and w != f} for f, texts in names.items()}
    reaching = set()
    for kernel in kernels:
        seen, todo = set(), [kernel]
        while todo:
            f = todo.pop()
            if f in seen:
                continue
            seen.add(f)
            todo.extend(calls.get(f, ()))
        if seen & syncs:
            reaching.add(kernel)
    return reaching


def device_globals(outside: str) -> list:
    """Names of the __device__ and __constant__ variables declared in `outside` (the code outside function bodies)."""
    globals_ = []
    for m in re.finditer(r"\b(__device__|__constant__)\b", outside):
        start = statement_start(outside, m.start())
        end = outside.find(";", m.end())
        if end < 0:
            continue
        stmt = outside[start:end]
        head = stmt.split("=")[0]
        if "(" in head or "__global__" in head:
            continue
        gm = re.search(r"\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*$", head.strip())
        if gm and gm.group(1) not in globals_:
            globals_.append(gm.group(1))
    return globals_
