"""Fuzzed model files: every truncated, bit-flipped or garbage file ends in a clear ValueError.

Each reader the engine uses (an `llmc train` checkpoint, a Hugging Face safetensors file, an
llm.c model file) gets over 500 damaged copies of a small valid file, from one seeded generator.
The train checkpoint is a zip archive with a CRC-32 per member, so every damaged copy must be
rejected. llm.c and safetensors files carry no checksum: a flipped bit inside a weight is a valid,
different model, and such a file may load, but only if it reads back exactly as written (no
misparse; at most the flipped values differ); a flip that makes a NaN or Inf is rejected.
"""
import random
import time

import pytest
import safetensors.torch

from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.inference import read_model
from llmc_core.train.checkpoint import save_checkpoint
from llmc_core.weights import write_llmc_checkpoint

CONFIG = GPT2Config(block_size=8, vocab_size=40, n_layer=1, n_head=2, n_embd=8)
PER_KIND = 170  # truncated, bit-flipped and garbage files each: 510 per reader
MAX_SECONDS = 5.0  # per file; reading a valid one takes milliseconds


def write_valid(kind, folder):
    """A valid model file of `kind` and the byte length of its header (the part with no tensor data)."""
    model = GPT2(CONFIG, seed=1)
    if kind == "llmc":
        path = folder / "model.bin"
        write_llmc_checkpoint(path, model, CONFIG)
        return path, 1024
    if kind == "safetensors":
        path = folder / "model.safetensors"
        safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return path, 8 + int.from_bytes(path.read_bytes()[:8], "little")
    path = folder / "checkpoint.pt"
    fields = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")
    save_checkpoint(path, {"model": model.state_dict(), "step": 1, "config": {},
                           "model_config": {f: getattr(CONFIG, f) for f in fields}})
    return path, None  # the archive's checksums cover every byte that matters


def damaged_copies(data: bytes, header: int | None, rng: random.Random):
    """(what, bytes, flipped byte offsets) for truncated, bit-flipped and garbage versions of data."""
    for _ in range(PER_KIND):
        yield "truncated", data[: rng.randrange(len(data))], []
    for _ in range(PER_KIND):
        b = bytearray(data)
        # half of the flips land in the header, where the structure lives
        span = header if header and rng.random() < 0.5 else len(b)
        offsets = sorted({rng.randrange(span) for _ in range(rng.randint(1, 4))})
        for o in offsets:
            b[o] ^= 1 << rng.randrange(8)
        yield "flipped", bytes(b), offsets
    for _ in range(PER_KIND):
        keep = rng.choice([0, 4, 8, 16, header or 64])  # garbage after a valid magic number or header
        noise = rng.randbytes(rng.randrange(2 * len(data)))
        yield "garbage", data[:keep] + noise, None


@pytest.mark.parametrize("kind", ["llmc", "safetensors", "train"])
def test_damaged_files_fail_with_a_clear_error(kind, tmp_path):
    original, header = write_valid(kind, tmp_path)
    config, state = read_model(original)[:2]
    data, rng = original.read_bytes(), random.Random(f"fuzz-{kind}")
    damaged = tmp_path / ("damaged" + original.suffix)
    outcomes = {}
    for what, content, offsets in damaged_copies(data, header, rng):
        damaged.write_bytes(content)
        start = time.perf_counter()
        try:
            loaded = read_model(damaged)
        except ValueError as e:
            assert str(damaged) in str(e), f"{what}: the error does not name the file: {e}"
            problem = str(e).replace(str(damaged), "").split()
            assert len(problem) >= 4 and "Traceback" not in str(e), f"{what}: the error does not say what is wrong: {e}"
            outcome = "rejected"
        else:
            # accepted: only a flipped file, and it must read back faithfully: the same model, or (in a
            # format with no checksum) one whose only changes are the weights the flips landed in
            assert what == "flipped", f"a {what} file was accepted"
            assert loaded[0] == config
            changed = sum(int((loaded[1][k] != v).sum()) for k, v in state.items())
            if changed:
                assert header is not None, f"flips at {offsets} changed {changed} checksummed weights"
                assert min(offsets) >= header and changed <= len(offsets), (offsets, changed)
            outcome = "read as written" if changed else "harmless (unused bytes)"
        assert time.perf_counter() - start < MAX_SECONDS, f"{what}: reading took too long"
        outcomes[what, outcome] = outcomes.get((what, outcome), 0) + 1
    print(kind, outcomes)  # with -s: how each kind of damage ended
    assert sum(outcomes.values()) >= 500
    rejected = sum(n for (what, outcome), n in outcomes.items() if outcome == "rejected")
    assert rejected >= 2 * PER_KIND, outcomes  # every truncated and garbage file, at least
