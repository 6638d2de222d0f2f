"""Malformed submissions for the grader's input fuzz test: each holds one thing that is wrong, and words the
grader's message must contain to say what.

`malformed_notebooks()` yields (label, bytes, words) for notebook files; `odd_zips()` yields
(label, zip bytes, words) for zipped submissions. Everything is generated from a fixed seed.
"""
import copy
import io
import json
import random
import stat
import warnings
import zipfile

NAME = "00_setup.ipynb"
BASE = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
    {"cell_type": "markdown", "metadata": {}, "source": "# A notebook"},
    {"cell_type": "code", "metadata": {"tags": ["demo"]}, "source": ["x = 1\n", "y = 2"], "outputs": [],
     "execution_count": None},
    {"cell_type": "code", "metadata": {}, "source": "z = 3", "outputs": [], "execution_count": None}]}
WRONG = [None, True, False, 0, -1, 3, 1.5, 10 ** 30, "", "text", "4", [], [1], [None], [[]], [{}], {}, {"a": 1},
         {"cells": []}]
# (path in the notebook, the message's words, whether a value is fine there)
SHAPES = [((), "not a notebook object", lambda v: isinstance(v, dict)),  # a dict: see TOP_DICT
          (("nbformat",), "nbformat", lambda v: v == 4 and v is not True),
          (("cells",), "`cells`", lambda v: isinstance(v, list))]  # a list: see the cells below
for i, cell in enumerate(BASE["cells"]):
    SHAPES += [(("cells", i), f"cells[{i}]", lambda v: False),
               (("cells", i, "cell_type"), f"cells[{i}] has cell_type", lambda v: v in ("code", "markdown", "raw")),
               (("cells", i, "source"), f"cells[{i}] has a source",
                lambda v: isinstance(v, str) or isinstance(v, list) and all(isinstance(x, str) for x in v)),
               (("cells", i, "metadata"), f"cells[{i}] has metadata", lambda v: isinstance(v, dict)),
               (("cells", i, "metadata", "tags"), f"cells[{i}] has metadata.tags",
                lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))]


def with_value(path, value):
    """A copy of BASE with `value` at `path` (a missing key for value `...`)."""
    if not path:
        return value
    nb = copy.deepcopy(BASE)
    parent = nb
    for key in path[:-1]:
        parent = parent[key]
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return nb


def encode(nb):
    return json.dumps(nb).encode()


def malformed_notebooks(seed=0):
    rng = random.Random(seed)
    for path, words, fine in SHAPES:  # every wrong type at every place the loader relies on
        for value in WRONG:
            if not fine(value):
                yield f"{'.'.join(map(str, path)) or 'top'}={json.dumps(value)}", encode(with_value(path, value)), words
    for value in (v for v in WRONG if isinstance(v, dict)):
        yield f"top={json.dumps(value)}", encode(value), "nbformat"
    for value in (v for v in WRONG if isinstance(v, list) and v):
        yield f"cells={json.dumps(value)}", encode(with_value(("cells",), value)), "cells[0]"
    for path, words in [(("cells",), "`cells`"), (("nbformat",), "nbformat"), (("cells", 1, "source"), "source"),
                        (("cells", 2, "cell_type"), "cell_type")]:
        yield f"no {'.'.join(map(str, path))}", encode(with_value(path, ...)), words
    for n in range(60):  # non-objects mixed among good cells
        cells = copy.deepcopy(BASE["cells"])
        bad = rng.choice(WRONG[:16])
        at = rng.randrange(len(cells) + 1)
        cells.insert(at, bad)
        yield f"cells with {json.dumps(bad)} at {at}", encode(dict(BASE, cells=cells)), f"cells[{at}]"
    good = encode(BASE)
    for n in range(60):  # bytes that are not UTF-8, inside the text
        at = rng.randrange(1, len(good) - 1)
        yield f"byte 0x{0x80 + n:x} at {at}", good[:at] + bytes([0x80 + n]) + good[at:], "not UTF-8"
    yield "utf-16", json.dumps(BASE).encode("utf-16"), "not UTF-8"
    for n in range(60):  # cut anywhere
        at = rng.randrange(1, len(good) - 1)
        yield f"cut at {at}", good[:at], "JSON does not parse"
    for depth in (1_000, 10_000, 100_000):
        yield f"nested {depth}", b"[" * depth + b"]" * depth, "nested too deeply"
        yield f"nested cells {depth}", b'{"nbformat": 4, "cells": ' + b"[" * depth + b"]" * depth + b"}", "nested too deeply"
    for text in (b"", b"   ", b"\xef\xbb\xbf{}", b"\x00" * 100, b"PK\x03\x04"):
        yield f"raw {text[:8]!r}", text, "JSON does not parse"


def huge_outputs(max_bytes):
    """Notebooks just over `max_bytes` through their outputs or one source line."""
    nb = copy.deepcopy(BASE)
    nb["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * max_bytes}]
    yield "huge output", encode(nb), "over the"
    nb = copy.deepcopy(BASE)
    nb["cells"][2]["source"] = "# " + "y" * max_bytes
    yield "huge source", encode(nb), "over the"


def zipped(members, compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return buffer.getvalue()


def odd_zips(max_bytes):
    bad = encode(with_value(("cells", 0), 7))
    good = encode(BASE)
    yield "not a zip", b"this is not a zip file", "could not be read"
    yield "truncated zip", zipped([(NAME, good)])[:-30], "could not be read"
    yield "only a folder named like it", zipped([(NAME + "/", b"")]), f"no {NAME}"
    yield "only under __MACOSX", zipped([(f"__MACOSX/{NAME}", good)]), f"no {NAME}"
    yield "parent path", zipped([(f"../{NAME}", bad)]), "cells[0]"
    yield "absolute path", zipped([(f"/{NAME}", bad)]), "cells[0]"
    yield "backslashes", zipped([(f"work\\{NAME}", bad)]), "cells[0]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate name: the point here
        yield "duplicate members", zipped([(NAME, bad), (NAME, bad)]), "cells[0]"
    link = zipfile.ZipInfo(NAME)
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    yield "symbolic link", zipped([(link, "/etc/passwd")]), "JSON does not parse"
    yield "zip bomb", zipped([(NAME, b" " * (max_bytes * 40))]), "over the"
    data = bytearray(zipped([(NAME, good)], zipfile.ZIP_STORED))
    at = data.index(good)
    data[at + 10] ^= 0xFF
    yield "bad checksum", bytes(data), "could not be read"
    data = bytearray(zipped([(NAME, good)]))
    data[6] |= 0x1  # the "encrypted" flag of the member's local header
    data[data.index(b"PK\x01\x02") + 8] |= 0x1  # and of its central directory entry
    yield "encrypted", bytes(data), "could not be read"
    data = bytearray(zipped([(NAME, good)]))
    data[8] = data[data.index(b"PK\x01\x02") + 10] = 99  # a compression method that does not exist
    yield "unknown compression", bytes(data), "could not be read"
    data = bytearray(zipped([(NAME, b"{" + b" " * (max_bytes * 2) + b"}")]))
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = (100).to_bytes(4, "little")  # the size it declares: a lie
    yield "declared size lies", bytes(data), "could not be read"  # read only as far as declared: checksum fails
