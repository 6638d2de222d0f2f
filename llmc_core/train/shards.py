"""Token shards in llm.c's format: a header of 256 int32, then the tokens as uint16.

Header slots (little-endian int32): [0] magic 20240520, [1] version 1, [2] token count; llm.c
reads only these. Shards written here also record the tokenizer that made them in slots llm.c
leaves zero: [3] its vocabulary size, [4..11] its fingerprint (llmc_core.tokenizer: SHA-256 of
pattern, special tokens and ranks, 32 bytes). Both are zero in llm.c's own shards, which hold
GPT-2 tokens. Slots 12..255 are zero. The file is exactly 1024 + 2 * count bytes. Documents
inside a shard are each preceded by <|endoftext|>, so the model sees where one ends.
llm.c, its PyTorch reference and modded-nanogpt all read this format.
"""
from pathlib import Path
from typing import NamedTuple

import numpy as np

from llmc_core.fileio import atomic_write_bytes
from llmc_core.llmc_header import HEADER_BYTES, SHARD_MAGIC, check_unused, header_bytes, read_header

SHARD_VERSION = 1
MAX_TOKEN = 2**16 - 1  # uint16
FINGERPRINT_SLOTS = slice(4, 12)  # 8 int32 = the 32 bytes of a SHA-256
PREPARE_FIX = "prepare it again with `llmc data prepare`"


class ShardInfo(NamedTuple):
    count: int
    n_vocab: int | None  # the recording tokenizer's vocabulary size; None in llm.c's own shards
    fingerprint: str | None  # hex SHA-256 of that tokenizer (llmc_core.tokenizer.tokenizer_fingerprint)


def write_shard(path, tokens, tokenizer=None):
    """Write token ids (any int array-like, each in 0..65535) to `path` as one llm.c shard.

    tokenizer: the tiktoken Encoding that made the tokens, recorded in the header (None: not
    recorded, as in llm.c's shards, which readers take for GPT-2's).
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
    limit = MAX_TOKEN if tokenizer is None else tokenizer.n_vocab - 1
    if tokens.size and (tokens.min() < 0 or tokens.max() > limit):
        raise ValueError(f"token ids must be in 0..{limit} ({'uint16' if tokenizer is None else tokenizer.name}); "
                         f"got range {int(tokens.min())}..{int(tokens.max())} for {path}")
    if tokens.size >= 2**31:
        raise ValueError(f"a shard holds fewer than 2**31 tokens, got {tokens.size}; split it")
    fields = [tokens.size]
    if tokenizer is not None:
        if tokenizer.n_vocab > MAX_TOKEN + 1:
            raise ValueError(f"{tokenizer.name} has {tokenizer.n_vocab} tokens; "
                             f"uint16 shards hold at most {MAX_TOKEN + 1}")
        from llmc_core.tokenizer import tokenizer_fingerprint
        digest = np.frombuffer(bytes.fromhex(tokenizer_fingerprint(tokenizer)), dtype="<i4")
        fields += [tokenizer.n_vocab, *digest.tolist()]
    atomic_write_bytes(path, header_bytes(SHARD_MAGIC, SHARD_VERSION, *fields) + tokens.astype("<u2").tobytes())


def read_shard_info(path) -> ShardInfo:
    """Validate the shard at `path` (header and size) and return its count and recorded tokenizer."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"token shard {path} does not exist; prepare data with `llmc data prepare`")
    header, size = read_header(path, SHARD_MAGIC, (SHARD_VERSION,), PREPARE_FIX)
    count, n_vocab = int(header[2]), int(header[3])
    expected = HEADER_BYTES + 2 * count
    if count < 0 or size != expected:
        raise ValueError(f"{path} says it holds {count} tokens, so it should be {expected} bytes, "
                         f"but it is {size} bytes: the file is truncated or corrupt; {PREPARE_FIX}")
    check_unused(path, header, FINGERPRINT_SLOTS.stop, "a token shard")
    digest = header[FINGERPRINT_SLOTS].astype("<i4").tobytes()
    if (n_vocab == 0) != (digest == bytes(32)) or not 0 <= n_vocab <= MAX_TOKEN + 1:
        raise ValueError(f"{path}: the header's tokenizer record (vocabulary size {n_vocab}, fingerprint "
                         f"{digest.hex()[:12]}...) is damaged; {PREPARE_FIX}")
    return ShardInfo(count, n_vocab or None, digest.hex() if n_vocab else None)


def read_shard_header(path):
    """Validate the shard at `path` and return its token count."""
    return read_shard_info(path).count


def load_shard(path):
    """The tokens of a validated shard as a read-only uint16 memmap of shape (count,).

    The tokens themselves are not read here (a shard holds up to 2**31 of them): that token ids
    are below the model's vocabulary is for whoever builds the batches to check.
    """
    count = read_shard_header(path)
    if count == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(count,))


def shard_tokenizer_name(info: ShardInfo) -> str:
    """How a message names the tokenizer a shard records."""
    from llmc_core.tokenizer import load_tokenizer, tokenizer_fingerprint
    if info.fingerprint is None:
        return "none recorded (llm.c's shards hold GPT-2 tokens, so GPT-2's is assumed)"
    if info.fingerprint == tokenizer_fingerprint(load_tokenizer("gpt2")):
        return f"gpt2 ({info.n_vocab} tokens, fingerprint {info.fingerprint[:12]})"
    return f"a {info.n_vocab}-token tokenizer, fingerprint {info.fingerprint[:12]}"


def check_shards_tokenizer(paths, enc):
    """ValueError unless every shard in `paths` was made by the tiktoken Encoding `enc`.

    Shards that record no tokenizer (llm.c's own) count as GPT-2's. The message names the shard,
    both tokenizers and the fix.
    """
    from llmc_core.tokenizer import describe, load_tokenizer, tokenizer_fingerprint
    mine = tokenizer_fingerprint(enc)
    gpt2 = tokenizer_fingerprint(load_tokenizer("gpt2"))
    for path in paths:
        info = read_shard_info(path)
        if (info.fingerprint or gpt2) != mine:
            raise ValueError(
                f"token shard {path} was made by another tokenizer than this run's: the shard's is "
                f"{shard_tokenizer_name(info)}, the run's is {describe(enc)}. Tokenize the data with the run's "
                f"tokenizer (`llmc data prepare NAME --tokenizer FILE`, or --tokenizer gpt2) or train with the "
                f"shards' tokenizer")


def check_shards_length(paths, need):
    """ValueError naming the first shard in `paths` that holds fewer than `need` tokens (one batch)."""
    for path in paths:
        count = read_shard_info(path).count
        if count < need:
            problem = "is empty (0 tokens)" if count == 0 else f"holds only {count} tokens"
            raise ValueError(f"token shard {path} {problem}, fewer than the {need} that one batch needs; "
                             f"prepare more data, or use a smaller batch or context length")
