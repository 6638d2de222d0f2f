"""Plain data: what probes return, what snapshots store, what a grading child may send back.

Plain data is None, bool, int, float, str, lists, string-keyed dicts and numpy arrays.
Everything a learner's code returns is turned into plain data before it is compared, so a
comparison never calls the learner's own `__eq__`.
"""
import math

import numpy as np


def to_plain(x, path="result"):
    """Return `x` as plain data: tuples become lists, numpy scalars become Python numbers."""
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{path} is an array of dtype {x.dtype}; only bool, int and float arrays are plain data")
        return np.array(x)  # a copy, so later changes by the learner's code cannot reach it
    if isinstance(x, (list, tuple)):
        return [to_plain(v, f"{path}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise TypeError(f"{path} has a key {k!r} of type {type(k).__name__}; plain dicts have string keys")
            out[k] = to_plain(v, f"{path}[{k!r}]")
        return out
    raise TypeError(f"{path} is a {type(x).__name__}, not plain data "
                    "(numbers, strings, bools, lists, string-keyed dicts, numpy arrays)")


def encode(x):
    """Plain data -> a JSON-ready structure (arrays become tagged dicts)."""
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.ravel().tolist(), "dtype": str(x.dtype), "shape": list(x.shape)}
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, dict):
        return {k: encode(v) for k, v in x.items()}
    return x


def decode(x):
    """The inverse of `encode`; also checks that untrusted JSON holds only plain data."""
    if isinstance(x, dict):
        if "__ndarray__" in x:
            dtype = np.dtype(x["dtype"])
            if dtype.kind not in "biuf":
                raise ValueError(f"array of dtype {dtype} is not plain data")
            return np.array(x["__ndarray__"], dtype=dtype).reshape([int(n) for n in x["shape"]])
        return {str(k): decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [decode(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise ValueError(f"{type(x).__name__} is not plain data")


def _fmt(x):
    if isinstance(x, float):
        return f"{x:.6g}"
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(x):
    if isinstance(x, np.ndarray):
        return f"array{tuple(x.shape)} of {x.dtype}"
    names = {list: "list", dict: "dict", str: "str", bool: "bool", int: "int", float: "float"}
    return names.get(type(x), type(x).__name__)


def _close(expected, got, rtol, atol):
    if math.isnan(expected) or math.isnan(got):
        return math.isnan(expected) and math.isnan(got)
    if math.isinf(expected) or math.isinf(got):
        return expected == got
    return abs(got - expected) <= atol + rtol * abs(expected)


def scale_factor(expected, got):
    """'got = 3 x expected' when got is expected times a small whole number or its inverse (a missing 1/k), else ''."""
    e, g = np.asarray(expected, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    use = np.abs(e) > 1e-12
    if not use.any() or not np.isfinite(g[use]).all():
        return ""
    ratios = g[use] / e[use]
    r = float(np.median(ratios))
    if not np.allclose(ratios, r, rtol=1e-3, atol=0):
        return ""
    for k in range(2, 17):
        if abs(r - k) < 1e-3 * k:
            return f"got = {k} x expected"
        if abs(r * k - 1) < 1e-3:
            return f"got = expected / {k}"
    if abs(r + 1) < 1e-3:
        return "got = -expected: a sign flipped"
    return ""


def tolerance(rtol, atol):
    return f"tolerance |got - expected| <= {atol:g} + {rtol:g} * |expected|"


def compare(expected, got, rtol, atol, path="result", reveal=True, layout=None):
    """None when `got` matches `expected` within tolerance, else a message naming the first difference.

    Floats compare with |got - expected| <= atol + rtol * |expected|; everything else exactly.
    With reveal=False the message says where and how values differ but not what was expected.
    `layout` ({path: axes}) names the parts of arrays, see `named_index`.
    """
    is_number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if is_number(expected) and is_number(got):
        if isinstance(expected, int) and isinstance(got, int):
            ok, note = expected == got, ""
        else:
            ok, note = _close(float(expected), float(got), rtol, atol), f"; {tolerance(rtol, atol)}"
        if ok:
            return None
        if reveal:
            factor = scale_factor(expected, got) if note else ""
            if note and not factor and math.isfinite(got - expected):
                factor = f"got - expected = {_fmt(float(got - expected))}"
            return f"{path}: expected {_fmt(expected)}, got {_fmt(got)}{'; ' + factor if factor else ''}{note}"
        return f"{path}: got {_fmt(got)}, which is not the expected value{note}"
    if isinstance(expected, np.ndarray) and isinstance(got, np.ndarray):
        return _compare_arrays(expected, got, rtol, atol, path, reveal, (layout or {}).get(path))
    if type(expected) is not type(got):
        return f"{path}: expected a {_type_name(expected)}, got a {_type_name(got)}"
    if isinstance(expected, list):
        return _compare_lists(expected, got, rtol, atol, path, reveal, layout)
    if isinstance(expected, dict):
        if set(expected) != set(got):
            missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
            return f"{path}: keys differ (missing {missing}, unexpected {extra})"
        for k in expected:
            message = compare(expected[k], got[k], rtol, atol, f"{path}[{k!r}]", reveal, layout)
            if message:
                return message
        return None
    if expected == got:
        return None
    if reveal:
        return f"{path}: expected {_fmt(expected)}, got {_fmt(got)}"
    return f"{path}: got {_fmt(got)}, which is not the expected value"


def _excerpt(items, i, width=3):
    """'[..., 97, 258, 99, ...]': the items around position i."""
    a, b = max(0, i - width), min(len(items), i + width + 1)
    inner = ", ".join(_fmt(x) for x in items[a:b])
    return "[" + ("..., " if a > 0 else "") + inner + (", ..." if b < len(items) else "") + "]"


def _compare_lists(expected, got, rtol, atol, path, reveal, layout):
    """The first differing position with both values and, when they differ, both lengths."""
    lengths = "" if len(expected) == len(got) else f"; lengths: expected {len(expected)}, got {len(got)}"
    for i, (e, g) in enumerate(zip(expected, got)):
        message = compare(e, g, rtol, atol, f"{path}[{i}]", reveal, layout)
        if not message:
            continue
        if isinstance(e, (list, dict, np.ndarray)) or not reveal:
            return message + lengths
        message += f"; the first difference in the list{lengths}"
        if max(len(expected), len(got)) > 7:  # a short list is already clear; a long one gets its neighbourhood
            message += f"\n  expected {_excerpt(expected, i)}\n  got      {_excerpt(got, i)}"
        return message
    if not lengths:
        return None
    n = min(len(expected), len(got))
    if len(expected) > n:  # got stopped early; expected values may be shown only when revealing
        more = f", where expected goes on with {_fmt(expected[n])}" if reveal else ""
        tail = f"; got stops after position {n - 1}{more}" if n else f"; got is empty{more.replace(', where', ';')}"
    else:
        tail = (f"; the items agree up to position {n - 1}, "
                f"then got has {len(got) - n} more, starting with {_fmt(got[n])}"
                if n else f"; got has {len(got)} item{'' if len(got) == 1 else 's'}, starting with {_fmt(got[0])}")
    return f"{path}: expected a list of length {len(expected)}, got length {len(got)}{tail}"


def named_index(index, axes):
    """'b 1, t 3, v, head 1, channel 0' for index (1, 3, 40)
    and axes ("b", "t", [("part", ("q", "k", "v")), ("head", 2), ("channel", 8)]).

    An axis is a name, or a list of (name, size) or (name, labels) factors that split it, outermost first.
    """
    words = []
    for i, axis in zip(index, axes):
        if isinstance(axis, str):
            words.append(f"{axis} {i}")
            continue
        digits = []
        for name, size in reversed(axis):
            n = len(size) if isinstance(size, (tuple, list)) else size
            digits.append(size[i % n] if isinstance(size, (tuple, list)) else f"{name} {i % n}")
            i //= n
        words += reversed(digits)
    return ", ".join(str(w) for w in words)


def layout_fits(shape, axes):
    if axes is None or len(axes) != len(shape):
        return False
    for n, axis in zip(shape, axes):
        if not isinstance(axis, str):
            sizes = [len(s) if isinstance(s, (tuple, list)) else s for _, s in axis]
            if int(np.prod(sizes)) != n:
                return False
    return True


def _labelled_parts(bad, axes):
    """'all in k': the labels of labelled factors (q/k/v) where values differ, when not every label does."""
    notes = []
    for d, axis in enumerate(axes):
        if isinstance(axis, str):
            continue
        sizes = [len(s) if isinstance(s, (tuple, list)) else s for _, s in axis]
        split = bad.reshape(bad.shape[:d] + tuple(sizes) + bad.shape[d + 1:])
        for f, (name, labels) in enumerate(axis):
            if not isinstance(labels, (tuple, list)):
                continue
            others = tuple(a for a in range(split.ndim) if a != d + f)
            hit = [lab for lab, any_bad in zip(labels, split.any(axis=others)) if any_bad]
            if len(hit) < len(labels):
                notes.append(f"all in {name} {' and '.join(hit)}")
    return ", ".join(notes)


def _compare_arrays(expected, got, rtol, atol, path, reveal, axes=None):
    if expected.shape != got.shape:
        return f"{path}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if expected.dtype != got.dtype:
        return f"{path}: expected dtype {expected.dtype}, got {got.dtype}"
    if expected.dtype.kind in "biu":
        bad = expected != got
    else:
        e, g = expected.astype(np.float64), got.astype(np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(g - e) <= atol + rtol * np.abs(e))
        bad &= ~(np.isnan(e) & np.isnan(g))
        bad &= ~(np.isinf(e) & (e == g))
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    named = layout_fits(expected.shape, axes)
    parts = _labelled_parts(bad, axes) if named else ""
    message = (f"{path}: {int(bad.sum())} of {bad.size} values differ{', ' + parts if parts else ''}; "
               f"first at index {first}")
    if named:
        message += f" = {named_index(first, axes)}"
    if not reveal:
        return message
    message += f" (expected {_fmt(expected[first].item())}, got {_fmt(got[first].item())})"
    if expected.dtype.kind == "f":
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        scale = np.abs(expected.astype(np.float64)).max()
        nans = int((np.isnan(got.astype(np.float64)) & ~np.isnan(expected.astype(np.float64))).sum())
        if nans:
            message += f"; got is NaN at {nans} of them"
        if np.isfinite(diff).all():
            message += f"; max abs error {diff.max():.3g}, max rel error {diff.max() / max(scale, 1e-30):.3g}"
            factor = scale_factor(expected, got)
            message += f"; {factor} everywhere" if factor else ""
        message += f"; {tolerance(rtol, atol)}"
    return message
