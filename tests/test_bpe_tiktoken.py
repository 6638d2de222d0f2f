"""Lesson 04's tokenizers against tiktoken, an independent implementation: ids must be identical."""
import time
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings, strategies as st

from llmc_core.datasets import tiny_shakespeare_text
from llmc_core.encodings import cl100k_encoding, gpt2_encoding

LESSON = "04_bpe_tokenizer"  # the notebook `nb` (tests/conftest.py) loads


def _torture_text():
    # newline="" keeps the corpus's \r\n and lone \r exactly as written
    with open(Path(__file__).parent / "data" / "bpe_torture.txt", encoding="utf-8", newline="") as f:
        return f.read()


@pytest.fixture(scope="module")
def pairs(nb):
    """(ours, tiktoken's) for GPT-2 and GPT-4, built once per module (recovering 150k merges takes ~4 s)."""
    return {"gpt2": (nb.GPT2Tokenizer(), gpt2_encoding()), "gpt4": (nb.GPT4Tokenizer(), cl100k_encoding())}


def first_mismatch(ours, theirs):
    """Index of the first differing id, or None; a failure message shows the ids around it."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return i
    return None if len(ours) == len(theirs) else min(len(ours), len(theirs))


def assert_same_ids(ours, theirs, what):
    i = first_mismatch(ours, theirs)
    mismatches = sum(a != b for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
    assert i is None, (f"{what}: {mismatches} mismatching ids of {len(theirs)}; first at {i}: "
                       f"ours {ours[max(0, i - 3):i + 4]} vs tiktoken {theirs[max(0, i - 3):i + 4]}")


def test_torture_corpus_is_diverse():
    text = _torture_text()
    assert "\r\n" in text and "\r" in text.replace("\r\n", "") and text.endswith("  ")
    assert "<|endoftext|>" in text and "<|endoftext|" in text.replace("<|endoftext|>", "")
    assert len({ord(c) >> 8 for c in text}) > 30  # many Unicode blocks


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
def test_shakespeare_exact(pairs, name):
    ours, theirs = pairs[name]
    text = tiny_shakespeare_text()
    t0 = time.perf_counter()
    ids = ours.encode_ordinary(text)
    seconds = time.perf_counter() - t0
    expected = theirs.encode_ordinary(text)
    assert_same_ids(ids, expected, f"{name} on tiny Shakespeare ({len(text):,} chars, ours took {seconds:.1f} s)")
    assert ours.decode(ids) == text


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
@pytest.mark.parametrize("mode", ["all", "as_text"])
def test_torture_exact(pairs, name, mode):
    ours, theirs = pairs[name]
    text = _torture_text()
    kwargs = {"allowed_special": "all"} if mode == "all" else {"disallowed_special": ()}
    ids = ours.encode(text, **kwargs)
    assert_same_ids(ids, theirs.encode(text, **kwargs), f"{name} on the torture corpus, {kwargs}")
    assert ours.decode(ids) == text


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
def test_torture_lines_exact(pairs, name):
    """Each line alone too: a line's end is where a trailing-whitespace rule (\\s+(?!\\S)) differs."""
    ours, theirs = pairs[name]
    lines = _torture_text().splitlines(keepends=True)
    for line in lines:
        for piece in (line, line.rstrip("\r\n"), " " + line):
            assert_same_ids(ours.encode(piece, disallowed_special=()), theirs.encode(piece, disallowed_special=()),
                            f"{name} on {piece!r}")


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
@pytest.mark.parametrize("text", ["a<|endoftext|>b", "x <|endoftext|> y", "<|endoftext|>", "<|fim_prefix|>z"],
                         ids=["inner", "spaced", "alone", "fim"])
def test_disallowed_special_raises_like_tiktoken(pairs, name, text):
    ours, theirs = pairs[name]
    try:
        expected = theirs.encode(text)
    except ValueError:
        with pytest.raises(ValueError):
            ours.encode(text)
    else:
        assert ours.encode(text) == expected


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
@pytest.mark.parametrize("allowed", [{"<|endoftext|>"}, "all", set()], ids=["eot", "all", "none"])
def test_allowed_subsets_like_tiktoken(pairs, name, allowed):
    ours, theirs = pairs[name]
    text = "a<|endoftext|>b<|endoftext|"
    assert ours.encode(text, allowed_special=allowed, disallowed_special=()) == \
        theirs.encode(text, allowed_special=allowed, disallowed_special=())


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
def test_specials_and_vocab_size(pairs, name):
    ours, theirs = pairs[name]
    assert ours.special_tokens == theirs._special_tokens
    assert len(ours.vocab) == len(theirs._mergeable_ranks) + len(theirs._special_tokens)
    assert max(ours.vocab) + 1 == theirs.n_vocab
    assert all(ours.vocab[rank] == token for token, rank in theirs._mergeable_ranks.items())


@pytest.mark.parametrize("name", ["gpt2", "gpt4"])
def test_decode_invalid_utf8_like_tiktoken(pairs, name):
    ours, theirs = pairs[name]
    ids = theirs.encode("héllo 👋 世界")
    for cut in range(len(ids) + 1):  # every prefix, many ending inside a multi-byte character
        assert ours.decode(ids[:cut]) == theirs.decode(ids[:cut])
    broken = [theirs.encode_single_token(bytes([0xFF])), *ids[1:]]
    assert ours.decode(broken) == theirs.decode(broken)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=60))
def test_round_trip_and_exact_on_arbitrary_unicode(pairs, text):
    for name, (ours, theirs) in pairs.items():
        ids = ours.encode(text, disallowed_special=())
        assert ids == theirs.encode(text, disallowed_special=()), name
        assert ours.decode(ids) == text, name


@pytest.mark.parametrize("pattern", ["GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN"])
def test_trained_tokenizer_equals_tiktoken_encoding(nb, pattern):
    """Train here, hand the same ranks and pattern to tiktoken: both must encode every text alike."""
    tok = nb.FastTokenizer(getattr(nb, pattern))
    tok.train(tiny_shakespeare_text()[:200_000], 1024)
    assert len(tok.merges) == 1024 - 256
    ranks = {tok.vocab[i]: i for i in range(1024)}
    assert len(ranks) == 1024  # every token's bytes are distinct
    enc = tiktoken.Encoding(name=f"trained-{pattern}", pat_str=tok.pattern, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 1024})
    tok.register_special_tokens({"<|endoftext|>": 1024})
    for text in (tiny_shakespeare_text()[200_000:400_000], _torture_text()):
        assert_same_ids(tok.encode(text, allowed_special="all"), enc.encode(text, allowed_special="all"),
                        f"trained {pattern}")
