"""The GPT-2 and GPT-4 (cl100k_base) tokenizers as tiktoken Encodings, built offline.

The vocabulary files ship in llmc_core/data/ (provenance in llmc_core/data/README.md), so
nothing is downloaded. The result is the same Encoding that `tiktoken.get_encoding("gpt2")`
or `("cl100k_base")` would build from OpenAI's servers.
"""

import base64
import functools
import json
from pathlib import Path

import tiktoken

DATA_DIR = Path(__file__).parent / "data"
GPT2_VOCAB_BPE = DATA_DIR / "gpt2" / "vocab.bpe"
GPT2_ENCODER_JSON = DATA_DIR / "gpt2" / "encoder.json"
CL100K_RANKS = DATA_DIR / "cl100k_base.tiktoken"

# The pre-tokenization pattern of the GPT-2 release (OpenAI's encoder.py): text is first cut
# into contractions, letter runs, digit runs, punctuation runs and whitespace, each with at
# most one leading space; BPE merges never cross these pieces.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_SPECIAL_TOKENS = {"<|endoftext|>": 50256}
GPT2_EOT = 50256

# cl100k_base (GPT-3.5/4), as tiktoken defines it: case-insensitive contractions, letters
# may carry one leading non-letter, digits in groups of at most three, newlines kept apart.
CL100K_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def gpt2_byte_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character, used in its vocabulary files.

    Bytes that print as themselves ('!'..'~', '¡'..'¬', '®'..'ÿ') keep their character;
    the other 68 (controls, space, ...) get chr(256), chr(257), ... in byte order, so every
    token's bytes can be written as visible text in encoder.json and vocab.bpe.
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in visible}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping


def gpt2_mergeable_ranks(vocab_bpe=GPT2_VOCAB_BPE, encoder_json=GPT2_ENCODER_JSON) -> dict[bytes, int]:
    """Token bytes -> id for GPT-2's 50,256 BPE tokens, read from encoder.json.

    tiktoken merges pairs in order of rank, so it needs the id of a merged token to be its
    merge priority. Checked here: the 256 single bytes hold ids 0..255, and merge i of
    vocab.bpe (a b) produces the token a+b with id 256 + i.
    """
    unicode_to_byte = {c: b for b, c in gpt2_byte_to_unicode().items()}

    def to_bytes(text: str) -> bytes:
        return bytes(unicode_to_byte[c] for c in text)

    encoder = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    ranks = {to_bytes(token): i for token, i in encoder.items() if token not in GPT2_SPECIAL_TOKENS}
    merges = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")[1:]  # line 0 is "#version: 0.2"
    merges = [line.split() for line in merges if line]
    expected = {bytes([b]) for b in range(256)}
    if {t for t, i in ranks.items() if i < 256} != expected:
        raise ValueError(f"{encoder_json}: ids 0..255 are not the 256 single bytes; the vocabulary file is damaged")
    for i, (a, b) in enumerate(merges):
        if ranks.get(to_bytes(a) + to_bytes(b)) != 256 + i:
            raise ValueError(
                f"{vocab_bpe} line {i + 2} merges {a!r} {b!r}, but {encoder_json} does not give the merged "
                f"token id {256 + i}: the two files do not belong together"
            )
    return ranks


def load_tiktoken_ranks(path) -> dict[bytes, int]:
    """Token bytes -> rank from a .tiktoken file: one 'base64(bytes) rank' pair per line."""
    ranks = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def gpt2_encoding() -> tiktoken.Encoding:
    """The GPT-2 tokenizer (50,257 tokens, <|endoftext|> = 50256)."""
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=gpt2_mergeable_ranks(),
        special_tokens=GPT2_SPECIAL_TOKENS,
        explicit_n_vocab=50257,
    )


@functools.cache
def cl100k_encoding() -> tiktoken.Encoding:
    """The GPT-4 tokenizer cl100k_base (100,256 BPE tokens + 5 special tokens)."""
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=CL100K_SPLIT_PATTERN,
        mergeable_ranks=load_tiktoken_ranks(CL100K_RANKS),
        special_tokens=CL100K_SPECIAL_TOKENS,
    )
