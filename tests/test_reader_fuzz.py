"""Fuzzed inputs for every file reader of tokenizers and token data.

Each reader gets >= 200 seeded mutations of a small valid file: truncations, bit flips, garbage
overwrites, insertions and deletions, reordered lines, and JSON or header fields of the wrong type.
The contract, asserted for every mutation:

- a failure is a ValueError (exactly, no other type) whose message names the file;
- an accepted input is not garbage, meaning both of:
  1. nothing in it is ignored or misread: writing back what the reader returned reproduces the
     input (byte for byte for the canonical formats: the tokenizer file, .tiktoken ranks, token
     shards, llm.c tokenizer files, up to the final newline of text files; for GPT-2's
     encoder.json the same JSON value, and for vocab.bpe the same merge lines); and
  2. it is usable: the tokenizer built from it encodes and decodes a text losslessly.
A shard's payload is any uint16 sequence: flipped bits there make another valid shard (the
reader does not scan up to 2**31 tokens; batches are checked against the model's vocabulary).
"""
import json

import numpy as np
import pytest
import tiktoken

from llmc_core.encodings import (
    CL100K_SPLIT_PATTERN,
    GPT2_ENCODER_JSON,
    GPT2_SPLIT_PATTERN,
    GPT2_VOCAB_BPE,
    gpt2_byte_to_unicode,
    gpt2_mergeable_ranks,
    load_tiktoken_ranks,
)
from llmc_core.llmc_header import SHARD_MAGIC, header_bytes
from llmc_core.tokenizer import load_tokenizer, ranks_text, save_tokenizer, train_tokenizer
from llmc_core.train.shards import load_shard, read_shard_info, write_shard

CASES = 220  # mutations per reader
TEXT = "The quick brown fox, 1234 jumps!\n\n  ROMEO. déjà vu 東京 🤖\tend"


def mutate(data: bytes, seed: int) -> bytes:
    """One seeded mutation of `data`; the kind cycles with the seed."""
    rng = np.random.default_rng(seed)
    n = len(data)
    kind = seed % 7
    if kind == 0:  # truncation
        return data[: int(rng.integers(0, n))]
    if kind == 1:  # 1-4 bit flips
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            i = int(rng.integers(0, n))
            out[i] ^= 1 << int(rng.integers(0, 8))
        return bytes(out)
    span = int(rng.integers(1, 33))
    at = int(rng.integers(0, max(1, n - span)))
    garbage = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    if kind == 2:  # overwrite with random bytes
        return data[:at] + garbage + data[at + span:]
    if kind == 3:  # insert random bytes
        return data[:at] + garbage + data[at:]
    if kind == 4:  # delete a span
        return data[:at] + data[at + span:]
    if kind == 5:  # swap two lines (or two 16-byte blocks in binary files)
        lines = data.split(b"\n") if b"\n" in data else [data[i:i + 16] for i in range(0, n, 16)]
        i, j = rng.integers(0, len(lines), 2)
        lines[i], lines[j] = lines[j], lines[i]
        return (b"\n" if b"\n" in data else b"").join(lines)
    return b""  # empty file


WRONG_VALUES = [None, "x", 1.5, [], {}, True, -1, 10**12, [1, 2], {"a": "b"}]


def wrong_type_json(obj, seed):
    """obj (a dict) with one value replaced by a value of another type."""
    rng = np.random.default_rng(seed)
    obj = dict(obj)
    key = list(obj)[int(rng.integers(0, len(obj)))]
    obj[key] = WRONG_VALUES[int(rng.integers(0, len(WRONG_VALUES)))]
    return obj


def check_rejected_or_sound(read, path, accepted_ok):
    """Run read(); a ValueError must name `path`; success must pass accepted_ok(result). Returns 'ok' or 'rejected'."""
    try:
        result = read()
    except ValueError as e:
        assert type(e) is ValueError, f"{type(e).__name__}: {e}"  # not a subclass such as UnicodeDecodeError
        assert path.name in str(e), f"error does not name {path.name}: {e}"
        return "rejected"
    accepted_ok(result)
    return "ok"


def roundtrips(enc: tiktoken.Encoding):
    assert enc.decode(enc.encode_ordinary(TEXT)) == TEXT


def same_text(written: bytes, original: bytes):
    assert written == original or written == original + b"\n", "accepted input is not what the reader returned"


@pytest.fixture(scope="module")
def small_encoding():
    return train_tokenizer("low lower lowest newer wider widest " * 20 + TEXT, 300)


def tally(outcomes):
    """Most mutations must be rejected (the test is not vacuous)."""
    assert outcomes.count("rejected") >= len(outcomes) // 2, outcomes.count("rejected")
    return outcomes


def test_fuzz_tokenizer_file(tmp_path, small_encoding):
    original = save_tokenizer(small_encoding, tmp_path / "good.tok").read_bytes()
    header, rest = original.split(b"\n", 1)
    outcomes = []
    for seed in range(CASES):
        if seed % 8 == 7:
            data = json.dumps(wrong_type_json(json.loads(header), seed), sort_keys=True).encode() + b"\n" + rest
        else:
            data = mutate(original, seed)
        path = tmp_path / f"case{seed}.tok"
        path.write_bytes(data)

        def sound(enc, data=data, seed=seed):
            same_text(save_tokenizer(enc, tmp_path / f"back{seed}.tok").read_bytes(), data)
            roundtrips(enc)

        outcomes.append(check_rejected_or_sound(lambda: load_tokenizer(path), path, sound))
    tally(outcomes)


def test_fuzz_tiktoken_ranks(tmp_path, small_encoding):
    original = ranks_text(small_encoding).encode("ascii")
    outcomes = []
    for seed in range(CASES):
        path = tmp_path / f"case{seed}.tiktoken"
        data = mutate(original, seed)
        path.write_bytes(data)

        def sound(ranks, data=data):
            enc = tiktoken.Encoding("fuzz", pat_str=CL100K_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={})
            same_text(ranks_text(enc).encode("ascii"), data)
            roundtrips(enc)

        outcomes.append(check_rejected_or_sound(lambda: load_tiktoken_ranks(path), path, sound))
    tally(outcomes)


@pytest.mark.parametrize("target", ["encoder.json", "vocab.bpe"])
def test_fuzz_gpt2_files(tmp_path, target):
    """A small GPT-2 vocabulary (its first 296 tokens and 40 merges); one of the two files mutated."""
    encoder = {t: i for t, i in json.loads(GPT2_ENCODER_JSON.read_text(encoding="utf-8")).items() if i < 296}
    merges = GPT2_VOCAB_BPE.read_text(encoding="utf-8").split("\n")[:41]
    good = {"encoder.json": json.dumps(encoder).encode(), "vocab.bpe": ("\n".join(merges) + "\n").encode()}
    to_unicode = gpt2_byte_to_unicode()
    outcomes = []
    for seed in range(CASES):
        folder = tmp_path / f"case{seed}"
        folder.mkdir()
        files = dict(good)
        if target == "encoder.json" and seed % 8 == 7:
            files[target] = json.dumps(wrong_type_json(encoder, seed)).encode()
        else:
            files[target] = mutate(good[target], seed)
        for name, data in files.items():
            (folder / name).write_bytes(data)

        def sound(ranks, files=files):
            as_json = {"".join(to_unicode[b] for b in token): i for token, i in ranks.items()}
            assert json.loads(files["encoder.json"]) == as_json
            lines = files["vocab.bpe"].decode("utf-8").split("\n")
            id_of = {v: k for k, v in as_json.items()}
            merged = [line.replace(" ", "") for line in lines[1:] if line]
            assert merged == [id_of[256 + i] for i in range(len(ranks) - 256)]
            roundtrips(tiktoken.Encoding("fuzz", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={}))

        outcomes.append(check_rejected_or_sound(
            lambda: gpt2_mergeable_ranks(folder / "vocab.bpe", folder / "encoder.json"), folder / target, sound))
    tally(outcomes)


def test_fuzz_token_shards(tmp_path, small_encoding):
    tokens = np.random.default_rng(0).integers(0, 300, 60)
    write_shard(tmp_path / "good.bin", tokens, small_encoding)
    original = (tmp_path / "good.bin").read_bytes()
    outcomes = []
    for seed in range(CASES):
        if seed % 8 == 7:  # a header slot of the wrong kind: any int32 in one of the first 16 slots
            rng = np.random.default_rng(seed)
            data = bytearray(original)
            slot = int(rng.integers(0, 16))
            data[4 * slot: 4 * slot + 4] = np.int32(rng.integers(-2**31, 2**31)).tobytes()
            data = bytes(data)
        else:
            data = mutate(original, seed)
        path = tmp_path / f"case{seed}.bin"
        path.write_bytes(data)

        def sound(loaded, data=data, path=path):
            info = read_shard_info(path)
            fields = [info.count] + ([] if info.n_vocab is None else
                                     [info.n_vocab, *np.frombuffer(bytes.fromhex(info.fingerprint), "<i4").tolist()])
            assert header_bytes(SHARD_MAGIC, 1, *fields) + np.asarray(loaded).astype("<u2").tobytes() == data

        outcomes.append(check_rejected_or_sound(lambda: load_shard(path), path, sound))
    # bit flips inside the token payload are valid shards by this definition: fewer must be rejected
    assert outcomes.count("rejected") >= len(outcomes) // 3, outcomes.count("rejected")


def test_fuzz_llmc_tokenizer_file(tmp_path, small_encoding):
    """llm.c's gpt2_tokenizer.bin format (llmc export --tokenizer-bin)."""
    import struct

    from llmc_core.train.export import read_llmc_tokenizer, write_llmc_tokenizer
    write_llmc_tokenizer(small_encoding, tmp_path / "good.bin")
    original = (tmp_path / "good.bin").read_bytes()
    outcomes = []
    for seed in range(CASES):
        data = mutate(original, seed)
        path = tmp_path / f"case{seed}.bin"
        path.write_bytes(data)

        def sound(result, data=data):
            tokens, eot = result
            rebuilt = struct.pack("<256i", 20240328, 2, len(tokens), eot, *[0] * 252)
            assert rebuilt + b"".join(bytes([len(t)]) + t for t in tokens) == data

        outcomes.append(check_rejected_or_sound(lambda: read_llmc_tokenizer(path), path, sound))
    assert outcomes.count("rejected") >= len(outcomes) // 3
