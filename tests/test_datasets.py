"""Tiny Shakespeare: the shipped corpus, its tokens and the split and batch helpers."""

from pathlib import Path

import numpy as np
import pytest

from llmc_core import datasets
from llmc_core.datasets import (
    random_batch,
    tiny_shakespeare_plays,
    tiny_shakespeare_text,
    tiny_shakespeare_tokens,
    train_val_split,
)
from llmc_core.encodings import gpt2_encoding

SHARED_PLAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "shakespeare"


def test_corpus_size_and_plays():
    text = tiny_shakespeare_text()
    assert 1_000_000 <= len(text) <= 1_200_000
    assert text.isascii()
    plays = tiny_shakespeare_plays()
    assert len(plays) == len(datasets.TINY_SHAKESPEARE_PLAYS) == 8
    assert plays[0].startswith("THE TRAGEDY OF CORIOLANUS")
    assert plays[-1].startswith("THE WINTER'S TALE")
    assert all("\n\n\n" not in p and p.strip() == p for p in plays)
    assert "Gutenberg" not in text and "GUTENBERG" not in text  # no licence boilerplate


@pytest.mark.skipif(not SHARED_PLAYS.is_dir(), reason="the source texts are not beside the repository")
def test_shipped_corpus_is_reproducible_from_the_sources():
    assert datasets.assemble_tiny_shakespeare(SHARED_PLAYS) == tiny_shakespeare_text()


def test_tokens_are_gpt2_tokens_of_the_plays():
    tokens = tiny_shakespeare_tokens()
    assert tokens.dtype == np.uint16 and tokens.ndim == 1
    assert not tokens.flags.writeable and tokens is tiny_shakespeare_tokens()  # cached, read-only
    eot = np.flatnonzero(tokens == 50256)
    assert len(eot) == 8 and eot[0] == 0  # one <|endoftext|> before each play
    enc = gpt2_encoding()
    ends = [*eot[1:], len(tokens)]
    for play, start, end in zip(tiny_shakespeare_plays(), eot, ends):
        assert enc.decode(tokens[start + 1 : end].tolist()) == play


def test_train_val_split():
    tokens = np.arange(1000)
    train, val = train_val_split(tokens, val_fraction=0.1)
    assert len(train) == 900 and len(val) == 100
    np.testing.assert_array_equal(np.concatenate([train, val]), tokens)  # exact, contiguous, no shuffling
    text_train, text_val = train_val_split("abcdefghij", 0.3)
    assert (text_train, text_val) == ("abcdefg", "hij")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 0.9999], ids=["zero", "one", "negative", "empty-train"])
def test_train_val_split_rejects(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(np.arange(10), fraction)


def test_random_batch_targets_are_inputs_shifted():
    tokens = np.arange(500, dtype=np.uint16)  # token value = its position, so windows are easy to read
    x, y = random_batch(tokens, B=4, T=16, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(np.diff(x, axis=1), 1)  # each row is one contiguous window
    x2, _ = random_batch(tokens, B=4, T=16, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)  # same seed, same batch
    # every window fits, including the last possible one
    x3, y3 = random_batch(np.arange(17), B=8, T=16, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(y3[0], np.arange(1, 17))
    with pytest.raises(ValueError, match="T \\+ 1"):
        random_batch(np.arange(16), B=1, T=16, rng=np.random.default_rng(2))
