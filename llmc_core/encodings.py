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
    merge priority. Checked here: encoder.json maps distinct tokens to the ids 0..N-1 (and
    <|endoftext|>, if present, to N), the 256 single bytes hold ids 0..255, and vocab.bpe holds
    exactly N - 256 merges, merge i (a b) producing the token a+b with id 256 + i. Any other
    content is a ValueError naming the file.
    """
    unicode_to_byte = {c: b for b, c in gpt2_byte_to_unicode().items()}

    def to_bytes(text, source):
        if not isinstance(text, str) or not text or any(c not in unicode_to_byte for c in text):
            raise ValueError(f"{source}: {str(text)[:40]!r} is not a token in GPT-2's byte-to-character "
                             f"alphabet; the file is damaged")
        return bytes(unicode_to_byte[c] for c in text)

    encoder = _read_json(encoder_json)
    if not isinstance(encoder, dict) or not all(type(i) is int for i in encoder.values()):
        raise ValueError(f"{encoder_json}: expected a JSON object of token -> integer id; the file is damaged")
    ranks = {to_bytes(token, encoder_json): i for token, i in encoder.items() if token not in GPT2_SPECIAL_TOKENS}
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"{encoder_json}: the ids of its {len(ranks)} tokens are not 0..{len(ranks) - 1}, "
                         f"each once; the file is damaged")
    if any(encoder[name] != len(ranks) for name in GPT2_SPECIAL_TOKENS if name in encoder):
        raise ValueError(f"{encoder_json}: <|endoftext|> must have the id after the last token, {len(ranks)}")
    if {t for t, i in ranks.items() if i < 256} != {bytes([b]) for b in range(256)}:
        raise ValueError(f"{encoder_json}: ids 0..255 are not the 256 single bytes; the vocabulary file is damaged")
    lines = read_text_file(vocab_bpe).split("\n")
    if not lines[0].startswith("#version"):
        raise ValueError(f"{vocab_bpe} line 1: expected the '#version: 0.2' header of a GPT-2 merges file")
    merges = lines[1:-1] if lines[-1] == "" else lines[1:]  # the file ends with a newline
    if len(merges) != len(ranks) - 256:
        raise ValueError(f"{vocab_bpe} holds {len(merges)} merges, but {encoder_json} has {len(ranks)} tokens, "
                         f"which need {len(ranks) - 256}: the two files do not belong together or one is damaged")
    for i, line in enumerate(merges):
        pair = line.split(" ")
        if len(pair) != 2:
            raise ValueError(f"{vocab_bpe} line {i + 2}: expected two tokens separated by a space, got {line[:60]!r}")
        a, b = (to_bytes(t, f"{vocab_bpe} line {i + 2}") for t in pair)
        if ranks.get(a + b) != 256 + i:
            raise ValueError(
                f"{vocab_bpe} line {i + 2} merges {pair[0]!r} {pair[1]!r}, but {encoder_json} does not give the merged "
                f"token id {256 + i}: the two files do not belong together"
            )
    return ranks


def _read_json(path):
    try:
        return json.loads(read_text_file(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); the file is damaged") from e


def parse_tiktoken_ranks(text: str, source, first_line: int = 1) -> dict[bytes, int]:
    """Token bytes -> rank from .tiktoken text, one 'base64(bytes) rank' line per token.

    Strict, so that a damaged file is an error rather than a tokenizer that silently drops text:
    line i holds rank i (first_line numbers the first line in messages), the base64 is canonical,
    no token repeats, and all 256 single bytes are tokens (else some text could not be encoded).
    Raises ValueError naming `source` and the line.
    """
    ranks = {}
    lines = text.split("\n")
    for rank, line in enumerate(lines[:-1] if lines[-1] == "" else lines):  # the last line may end in \n
        where = f"{source} line {first_line + rank}"
        fields = line.split(" ")
        if len(fields) != 2 or fields[1] != str(rank):
            raise ValueError(f"{where}: expected 'BASE64 {rank}' (token bytes in base64, then rank {rank}), "
                             f"got {line[:60]!r}; the file is damaged or not a .tiktoken rank file")
        try:
            token = base64.b64decode(fields[0], validate=True)
        except ValueError:
            token = None
        if not token or base64.b64encode(token).decode("ascii") != fields[0]:
            raise ValueError(f"{where}: {fields[0][:60]!r} is not the base64 of a token; the file is damaged")
        if token in ranks:
            raise ValueError(f"{where}: token {token!r} already has rank {ranks[token]}; the file is damaged")
        ranks[token] = rank
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ValueError(f"{source}: {len(missing)} of the 256 single bytes are not tokens (e.g. byte {missing[0]}), "
                         f"so some text could not be encoded; the file is damaged or not a byte-level BPE vocabulary")
    return ranks


def read_text_file(path, encoding="utf-8") -> str:
    """The text of `path`; ValueError naming the file if it is missing or not `encoding` text."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist (or is not a file)")
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: byte {e.start} is not {encoding} text; "
                         "the file is damaged or of another kind") from e


def load_tiktoken_ranks(path) -> dict[bytes, int]:
    """Token bytes -> rank from a .tiktoken file: one 'base64(bytes) rank' pair per line (see parse_tiktoken_ranks)."""
    return parse_tiktoken_ranks(read_text_file(path, "ascii"), path)


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
