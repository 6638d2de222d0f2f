"""Token shards in llm.c's format: a header of 256 int32, then the tokens as uint16.

Header slots (little-endian int32): [0] magic 20240520, [1] version 1, [2] token count;
the other 253 slots are zero. The file is exactly 1024 + 2 * count bytes. Documents inside
a shard are each preceded by <|endoftext|> (50256), so the model sees where one ends.
llm.c, its PyTorch reference and modded-nanogpt all read this format.
"""
from pathlib import Path

import numpy as np

from llmc_core.fileio import atomic_write_bytes

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_TOKEN = 2**16 - 1  # uint16


def write_shard(path, tokens):
    """Write token ids (any int array-like, each in 0..65535) to `path` as one llm.c shard."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() > MAX_TOKEN):
        raise ValueError(f"token ids must fit in uint16 (0..{MAX_TOKEN}); got range "
                         f"{int(tokens.min())}..{int(tokens.max())} for {path}")
    if tokens.size >= 2**31:
        raise ValueError(f"a shard holds fewer than 2**31 tokens, got {tokens.size}; split it")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, tokens.size
    atomic_write_bytes(path, header.tobytes() + tokens.astype("<u2").tobytes())


def read_shard_header(path):
    """Validate the shard at `path` and return its token count."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"token shard {path} does not exist; prepare data with `llmc data prepare`")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ValueError(f"{path} is {size} bytes, shorter than the {HEADER_BYTES}-byte shard header; "
                         f"it is not an llm.c token shard (or it was cut short): prepare it again")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    magic, version, count = int(header[0]), int(header[1]), int(header[2])
    if magic != SHARD_MAGIC:
        raise ValueError(f"{path} has magic {magic}, not {SHARD_MAGIC}: it is not an llm.c GPT-2 token "
                         f"shard (20240801 would be a Llama-3 shard, which this trainer does not read)")
    if version != SHARD_VERSION:
        raise ValueError(f"{path} has shard version {version}; this reader knows version {SHARD_VERSION}")
    expected = HEADER_BYTES + 2 * count
    if count < 0 or size != expected:
        raise ValueError(f"{path} says it holds {count} tokens, so it should be {expected} bytes, "
                         f"but it is {size} bytes: the file is truncated or corrupt; prepare it again")
    return count


def load_shard(path):
    """The tokens of a validated shard as a read-only uint16 memmap of shape (count,)."""
    count = read_shard_header(path)
    if count == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(count,))
