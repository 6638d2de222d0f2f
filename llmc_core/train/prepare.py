"""`llmc data prepare NAME`: turn a text corpus into llm.c token shards.

Every document becomes <|endoftext|> followed by its tokens, GPT-2's or those of a tokenizer
file (`tokenizer=`, see llmc_core.tokenizer); documents are packed in order into shards of
`shard_tokens` tokens (the last one shorter), each recording the tokenizer that made it. Shards
of GPT-2 tokens go to <data_dir>/<name>/, others to <data_dir>/<name>-<tokenizer>-<fingerprint>/,
so shards of different tokenizers never mix. Corpora and their splits:

- tinyshakespeare: the corpus shipped with llmc_core; val = the first 32,768 GPT-2 tokens, train =
  the rest (llm.c's split); with another tokenizer, val is the same text (so bits per byte
  compare). Files tiny_shakespeare_{val,train}.bin. Nothing is downloaded.
- tinystories: TinyStories_all_data.tar.gz from the Hugging Face hub (50 json files, each a
  list of {"story": ...}); val = data00.json, train = the other 49, as llm.c splits it.
- fineweb-edu: the 10B-token sample of FineWeb-Edu, parquet files with a "text" column
  (reading parquet needs pyarrow); val = the first shard_tokens tokens, train = the rest.

Downloads show a progress bar and resume where an interrupted one stopped (HTTP Range); when
one fails (e.g. offline) the error says so in one line and how to go on.
Tokenizing runs in `workers` processes. `source=` points any corpus at local files instead.
"""
import http.client
import json
import multiprocessing as mp
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from llmc_core.tokenizer import load_tokenizer, tokenizer_fingerprint, tokenizer_from_dict, tokenizer_to_dict
from llmc_core.train.shards import write_shard

DATASETS = ("tinyshakespeare", "tinystories", "fineweb-edu")
TINYSTORIES_URL = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories_all_data.tar.gz"
FINEWEB_EDU_URL = "https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu/resolve/main/sample/10BT/{index:03d}_00000.parquet"
FINEWEB_EDU_FILES = 14  # sample/10BT holds 000_00000.parquet .. 013_00000.parquet
SHAKESPEARE_VAL_TOKENS = 32768


def default_data_dir():
    return Path.home() / ".cache" / "llmc" / "data"


# ---------------------------------------------------------------------------------------------
# downloading


class DownloadError(ValueError):
    """A download failed; the message says what to do instead (a ValueError: `llmc` prints it in one line)."""


def download(url, dest, progress=True, timeout=60.0):
    """Download `url` to `dest`, resuming a partial `dest.part` left by an earlier attempt.

    Raises DownloadError when the network fails (offline, DNS, HTTP error, timeout).
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    try:
        return _download(url, dest, progress, timeout)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(
            f"could not download {url} ({reason}); check the network, or fetch the data elsewhere and pass the "
            f"folder of its files with --source DIR (tinyshakespeare ships with llmc and needs no download)") from None


def _download(url, dest, progress, timeout):
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "llmc"}
    if have:
        headers["Range"] = f"bytes={have}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        total = int(response.headers.get("Content-Length") or 0)
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=have + total if total else None, initial=have, unit="B", unit_scale=True,
                desc=dest.name, disable=not progress) as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk))
    os.replace(part, dest)
    return dest


# ---------------------------------------------------------------------------------------------
# tokenizing and sharding


_worker_encoding = None  # the tokenizer of a worker process, set once by _init_worker


def _init_worker(tokenizer_dict):
    global _worker_encoding
    _worker_encoding = tokenizer_from_dict(tokenizer_dict)


def tokenize_document(text, enc=None):
    """<|endoftext|> then the tokens of `text` (enc: a tiktoken Encoding; default GPT-2's), as uint16."""
    enc = enc or _worker_encoding or load_tokenizer("gpt2")
    return np.asarray([enc.eot_token] + enc.encode_ordinary(text), dtype=np.uint16)


def tokenize_documents(texts, enc, workers=1, chunksize=16):
    """Yield tokenize_document(t, enc) for each text, in order, using `workers` processes."""
    if workers <= 1:
        yield from (tokenize_document(text, enc) for text in texts)
        return
    # the tokenizer travels once per worker, not with every document
    with mp.get_context("spawn").Pool(workers, _init_worker, (tokenizer_to_dict(enc),)) as pool:
        yield from pool.imap(tokenize_document, texts, chunksize=chunksize)


class ShardWriter:
    """Packs token arrays into shards named <prefix>_<split>_<index:06d>.bin of shard_tokens tokens."""

    def __init__(self, out_dir, prefix, split, shard_tokens, enc):
        self.out_dir, self.prefix, self.split, self.shard_tokens = Path(out_dir), prefix, split, shard_tokens
        self.enc = enc
        self.buffer = np.empty(shard_tokens, dtype=np.uint16)
        self.filled, self.index, self.paths, self.total = 0, 0, [], 0

    def add(self, tokens):
        while len(tokens):
            take = min(len(tokens), self.shard_tokens - self.filled)
            self.buffer[self.filled:self.filled + take] = tokens[:take]
            self.filled += take
            tokens = tokens[take:]
            if self.filled == self.shard_tokens:
                self.flush()

    def flush(self):
        if self.filled:
            path = self.out_dir / f"{self.prefix}_{self.split}_{self.index:06d}.bin"
            write_shard(path, self.buffer[:self.filled], self.enc)
            self.paths.append(path)
            self.total += self.filled
            self.index += 1
            self.filled = 0
        return self.paths


def write_split(texts, enc, out_dir, prefix, split, shard_tokens, workers, progress, total=None):
    """Tokenize an iterable of texts into shards of one split; returns the shard paths."""
    writer = ShardWriter(out_dir, prefix, split, shard_tokens, enc)
    for tokens in tqdm(tokenize_documents(texts, enc, workers), total=total, unit="doc",
                       desc=f"{prefix} {split}", disable=not progress):
        writer.add(tokens)
    return writer.flush()


# ---------------------------------------------------------------------------------------------
# the corpora


def prepare_tinyshakespeare(out_dir, enc):
    from llmc_core.datasets import tiny_shakespeare_plays, tiny_shakespeare_tokens
    gpt2 = load_tokenizer("gpt2")
    tokens = tiny_shakespeare_tokens()
    val, train = tokens[:SHAKESPEARE_VAL_TOKENS], tokens[SHAKESPEARE_VAL_TOKENS:]
    if tokenizer_fingerprint(enc) != tokenizer_fingerprint(gpt2):
        # the same validation text as GPT-2's split (its tokens 1..32767 lie inside the first play)
        first, *rest = tiny_shakespeare_plays()
        cut = len(gpt2.decode(val[1:].tolist()))
        val = tokenize_document(first[:cut], enc)
        train = np.concatenate([enc.encode_ordinary(first[cut:])] + [tokenize_document(p, enc) for p in rest])
    paths = [out_dir / "tiny_shakespeare_val.bin", out_dir / "tiny_shakespeare_train.bin"]
    write_shard(paths[0], val, enc)
    write_shard(paths[1], train, enc)
    return paths


def tinystories_texts(json_path):
    with open(json_path, encoding="utf-8") as f:
        return [story["story"].strip() for story in json.load(f)]


def prepare_tinystories(out_dir, enc, source, workers, shard_tokens, progress):
    if source is None:
        archive = download(TINYSTORIES_URL, out_dir / "TinyStories_all_data.tar.gz", progress)
        source = out_dir / "raw"
        if not (source / "data00.json").is_file():
            with tarfile.open(archive) as tar:
                tar.extractall(source, filter="data")
    files = sorted(Path(source).glob("*.json"))
    if len(files) < 2:
        raise ValueError(f"{source} holds {len(files)} TinyStories .json files; need at least 2 (val = the first)")
    paths = write_split(tinystories_texts(files[0]), enc, out_dir, "tinystories", "val", shard_tokens, workers,
                        progress)
    train_texts = (text for f in files[1:] for text in tinystories_texts(f))
    return paths + write_split(train_texts, enc, out_dir, "tinystories", "train", shard_tokens, workers, progress)


def text_files_texts(files):
    """The "text" of every record in .parquet (needs pyarrow) or .jsonl files, in order."""
    for path in files:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)["text"]
        else:
            try:
                import pyarrow.parquet as pq
            except ImportError as e:
                raise ValueError(f"reading {path} needs pyarrow: `pip install pyarrow`") from e
            for batch in pq.ParquetFile(path).iter_batches(columns=["text"]):
                yield from batch.column(0).to_pylist()


def prepare_fineweb_edu(out_dir, enc, source, workers, shard_tokens, progress, files=FINEWEB_EDU_FILES):
    if source is None:
        raw = out_dir / "raw"
        sources = [download(FINEWEB_EDU_URL.format(index=i), raw / f"{i:03d}_00000.parquet", progress)
                   for i in range(files)]
    else:
        sources = sorted(p for p in Path(source).iterdir() if p.suffix in (".parquet", ".jsonl"))
    if not sources:
        raise ValueError(f"{source} holds no .parquet or .jsonl files with a 'text' field")
    # the first shard_tokens tokens are val, everything after is train (llm.c: shard 0 is val)
    val = ShardWriter(out_dir, "fineweb_edu", "val", shard_tokens, enc)
    train = ShardWriter(out_dir, "fineweb_edu", "train", shard_tokens, enc)
    for tokens in tqdm(tokenize_documents(text_files_texts(sources), enc, workers), unit="doc",
                       desc="fineweb-edu", disable=not progress):
        if not val.paths:  # still filling the validation shard; what does not fit goes to train
            room = shard_tokens - val.filled
            val.add(tokens[:room])
            tokens = tokens[room:]
        train.add(tokens)
    return val.flush() + train.flush()


def prepare(name, data_dir=None, workers=None, shard_tokens=100_000_000, source=None, progress=True,
            tokenizer="gpt2"):
    """Write the train and val shards of corpus `name` to dataset_dir(...); returns their paths.

    tokenizer: "gpt2", the path of a tokenizer file, or a tiktoken Encoding.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; `llmc data prepare` knows {', '.join(DATASETS)}")
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
    enc = load_tokenizer(tokenizer)
    if "<|endoftext|>" not in enc._special_tokens or enc.n_vocab > 2**16:
        raise ValueError(f"tokenizer {enc.name} needs an <|endoftext|> token and at most 65,536 ids for uint16 shards")
    out_dir = dataset_dir(name, data_dir, enc)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, (os.cpu_count() or 2) - 1)
    if name == "tinyshakespeare":
        return prepare_tinyshakespeare(out_dir, enc)
    if name == "tinystories":
        return prepare_tinystories(out_dir, enc, source, workers, shard_tokens, progress)
    return prepare_fineweb_edu(out_dir, enc, source, workers, shard_tokens, progress)


def dataset_dir(name, data_dir=None, tokenizer="gpt2"):
    """Where prepare(name, tokenizer=...) writes: <data_dir>/<name> for GPT-2, else a folder per tokenizer."""
    enc = load_tokenizer(tokenizer)
    root = Path(data_dir or default_data_dir())
    fingerprint = tokenizer_fingerprint(enc)
    if fingerprint == tokenizer_fingerprint(load_tokenizer("gpt2")):
        return root / name
    return root / f"{name}-{enc.name}-{fingerprint[:8]}"


def shard_patterns(name, data_dir=None, tokenizer="gpt2"):
    """The (train, val) glob patterns of the shards that prepare(name, tokenizer=...) writes."""
    out_dir = dataset_dir(name, data_dir, tokenizer)
    return str(out_dir / "*_train*.bin"), str(out_dir / "*_val*.bin")
