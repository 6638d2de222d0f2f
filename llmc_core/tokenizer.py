"""The course's own BPE tokenizer as a tiktoken Encoding: train it, save it, load it, fingerprint it.

`train_tokenizer(text, vocab_size)` runs lesson 04's fast trainer (llmc_core.bpe) with the
GPT-4 split pattern and appends <|endoftext|> as the last id. Everything else works on plain
tiktoken Encodings, so GPT-2's tokenizer (`load_tokenizer("gpt2")`) goes through the same code.

The tokenizer file (`llmc tokenizer train ... --out FILE`) is text:

    line 1     {"format": "llmc-tokenizer", "name": ..., "pat_str": ..., "ranks": N,
                "special_tokens": {"<|endoftext|>": N}, "version": 1}   (one line, sorted keys)
    lines 2..  N lines 'BASE64(token bytes) RANK', rank 0..N-1: exactly a .tiktoken file

so `tail -n +2 FILE` is a rank file that tiktoken's own `load_tiktoken_bpe` reads. The reader is
strict: anything but a file `save_tokenizer` could have written is a ValueError naming the file.
"""
import base64
import hashlib
import json
from pathlib import Path

import tiktoken

from llmc_core.encodings import CL100K_SPLIT_PATTERN, gpt2_encoding, parse_tiktoken_ranks, read_text_file
from llmc_core.fileio import atomic_write_text

FORMAT = "llmc-tokenizer"
VERSION = 1
EOT = "<|endoftext|>"
# Text every loaded tokenizer must encode and decode losslessly: a split pattern that skips some
# characters (tiktoken drops what the pattern does not match) is rejected, not used.
PROBE_TEXT = "Hello, World! It's 1623.\n\n  ROMEO.\tO déjà vu 東京 🤖\r\n<|x|> ~`@#$%^&*()_+-=[]{}|;:\",./<>?\\ end"


def train_tokenizer(text: str, vocab_size: int, workers: int = 1, name: str | None = None) -> tiktoken.Encoding:
    """A byte-level BPE tokenizer of `vocab_size` ids trained on `text`; <|endoftext|> is the last id.

    The merges are lesson 04's (most frequent pair, ties to the smallest, GPT-4 split pattern). It
    stops early, with fewer ids, when the text has no pairs left to merge; a merge that rebuilds an
    existing token's bytes (possible in BPE) adds no id, since tiktoken ranks byte strings.
    """
    if not isinstance(vocab_size, int) or vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (256 bytes + <|endoftext|>), got {vocab_size!r}")
    if not text:
        raise ValueError("the training text is empty; give the corpus to learn merges from")
    from llmc_core import bpe  # lesson 04's solution, imported only here: the grader hides it from lesson 04
    merges = bpe.train_merges_fast(bpe.count_chunks_parallel(text, CL100K_SPLIT_PATTERN, workers), vocab_size - 1)
    vocab = {i: bytes([i]) for i in range(256)}
    ranks = {token: i for i, token in vocab.items()}
    for (a, b), new_id in merges.items():
        vocab[new_id] = vocab[a] + vocab[b]
        ranks.setdefault(vocab[new_id], len(ranks))
    return tiktoken.Encoding(name=name or f"llmc-bpe-{len(ranks) + 1}", pat_str=CL100K_SPLIT_PATTERN,
                             mergeable_ranks=ranks, special_tokens={EOT: len(ranks)})


def ranks_text(enc: tiktoken.Encoding) -> str:
    """The Encoding's mergeable ranks as .tiktoken text (lines in rank order, each ending in a newline)."""
    by_rank = sorted(enc._mergeable_ranks.items(), key=lambda kv: kv[1])
    return "".join(f"{base64.b64encode(token).decode('ascii')} {rank}\n" for token, rank in by_rank)


def _header(enc: tiktoken.Encoding) -> dict:
    return {"format": FORMAT, "version": VERSION, "name": enc.name, "pat_str": enc._pat_str,
            "special_tokens": dict(enc._special_tokens), "ranks": len(enc._mergeable_ranks)}


def _header_line(header: dict) -> str:
    return json.dumps(header, sort_keys=True, ensure_ascii=True)


def tokenizer_to_dict(enc: tiktoken.Encoding) -> dict:
    """The Encoding as plain JSON-able data (what a checkpoint stores under "tokenizer")."""
    return {**_header(enc), "ranks": ranks_text(enc)}


def tokenizer_from_dict(d, source="the tokenizer dict") -> tiktoken.Encoding:
    """The Encoding that tokenizer_to_dict(enc) described; ValueError naming `source` if it is damaged."""
    if not isinstance(d, dict) or not isinstance(d.get("ranks"), str):
        raise ValueError(f"{source}: expected a dict with the tokenizer's 'ranks' text, got {type(d).__name__}")
    header = {**d, "ranks": len(d["ranks"].splitlines())}
    return _build(_check_header(header, source), parse_tiktoken_ranks(d["ranks"], f"{source} ranks"), source)


def save_tokenizer(enc: tiktoken.Encoding, path) -> Path:
    """Write the Encoding to `path` in the tokenizer file format (atomically); returns the path."""
    path = Path(path)
    atomic_write_text(path, _header_line(_header(enc)) + "\n" + ranks_text(enc))
    return path


def load_tokenizer(spec) -> tiktoken.Encoding:
    """The tokenizer named by `spec`: "gpt2" (GPT-2's, shipped) or the path of a tokenizer file."""
    if isinstance(spec, tiktoken.Encoding):
        return spec
    if spec == "gpt2":
        return gpt2_encoding()
    if not isinstance(spec, (str, Path)):
        raise ValueError(f"a tokenizer is 'gpt2' or the path of a tokenizer file, got {type(spec).__name__}")
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"tokenizer file {path} does not exist; write one with `llmc tokenizer train "
                         f"--vocab-size N CORPUS --out {path}` or use 'gpt2'")
    text = read_text_file(path, "ascii")
    first, _, rest = text.partition("\n")
    try:
        header = json.loads(first)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} line 1: not a tokenizer file header ({e.msg}); write it with "
                         f"`llmc tokenizer train`") from e
    header = _check_header(header, path)
    if _header_line(header) != first:
        raise ValueError(f"{path} line 1: the header is not in the form save_tokenizer writes; "
                         "the file was edited or damaged")
    ranks = parse_tiktoken_ranks(rest, path, first_line=2)
    if len(ranks) != header["ranks"]:
        raise ValueError(f"{path}: the header promises {header['ranks']} ranks but the file holds {len(ranks)}; "
                         f"it was cut short or damaged")
    return _build(header, ranks, path)


def _check_header(header, source) -> dict:
    """The header's fields, checked for type and meaning; ValueError naming `source`."""
    if not isinstance(header, dict):
        raise ValueError(f"{source}: the tokenizer header is a {type(header).__name__}, not an object")
    if header.get("format") != FORMAT or type(header.get("version")) is not int or header["version"] != VERSION:
        raise ValueError(f"{source}: not an {FORMAT} version {VERSION} file (format={header.get('format')!r}, "
                         f"version={header.get('version')!r})")
    expected = {"format", "version", "name", "pat_str", "special_tokens", "ranks"}
    if set(header) != expected:
        raise ValueError(f"{source}: the tokenizer header has fields {sorted(header)}, expected {sorted(expected)}")
    name, pat, special, n = header["name"], header["pat_str"], header["special_tokens"], header["ranks"]
    if not isinstance(name, str) or not isinstance(pat, str) or not pat:
        raise ValueError(f"{source}: 'name' and 'pat_str' must be strings (pat_str non-empty)")
    if type(n) is not int or n < 256:
        raise ValueError(f"{source}: 'ranks' must be a count of at least 256 tokens, got {n!r}")
    ok = isinstance(special, dict) and all(isinstance(k, str) and k and type(v) is int and v >= n
                                           for k, v in special.items())
    if not ok or len(set(special.values())) != len(special):
        raise ValueError(f"{source}: 'special_tokens' must map distinct non-empty strings to distinct ids "
                         f">= {n} (after the {n} ranks), got {str(special)[:80]}")
    return header


def _build(header, ranks, source) -> tiktoken.Encoding:
    try:
        enc = tiktoken.Encoding(name=header["name"], pat_str=header["pat_str"], mergeable_ranks=ranks,
                                special_tokens=header["special_tokens"])
    except Exception as e:  # tiktoken's Rust core reports a bad pattern with its own exception types
        raise ValueError(f"{source}: tiktoken rejects this tokenizer ({type(e).__name__}: {e})") from e
    if enc.decode(enc.encode_ordinary(PROBE_TEXT)) != PROBE_TEXT:
        raise ValueError(f"{source}: the split pattern does not cover all text (encoding then decoding a test "
                         f"sentence loses characters); the pattern is damaged")
    return enc


def tokenizer_fingerprint(enc: tiktoken.Encoding) -> str:
    """A stable hex SHA-256 of what decides the tokens: split pattern, special tokens and ranks (not the name)."""
    digest = hashlib.sha256(json.dumps([enc._pat_str, sorted(enc._special_tokens.items())]).encode("utf-8"))
    digest.update(ranks_text(enc).encode("ascii"))
    return digest.hexdigest()


def describe(enc: tiktoken.Encoding) -> str:
    """One line naming a tokenizer for messages: name, size and fingerprint prefix."""
    return f"{enc.name} ({enc.n_vocab} tokens, fingerprint {tokenizer_fingerprint(enc)[:12]})"
