"""`llmc data prepare NAME`: turn a text corpus into llm.c token shards.

Every document becomes <|endoftext|> followed by its GPT-2 tokens; documents are packed in
order into shards of `shard_tokens` tokens (the last one shorter). Corpora and their splits:

- tinyshakespeare: the corpus shipped with llmc_core; val = the first 32,768 tokens, train =
  the rest (llm.c's split). Files tiny_shakespeare_{val,train}.bin. Nothing is downloaded.
- tinystories: TinyStories_all_data.tar.gz from the Hugging Face hub (50 json files, each a
  list of {"story": ...}); val = data00.json, train = the other 49, as llm.c splits it.
- fineweb-edu: the 10B-token sample of FineWeb-Edu, parquet files with a "text" column
  (reading parquet needs pyarrow); val = the first shard_tokens tokens, train = the rest.

Downloads show a progress bar and resume where an interrupted one stopped (HTTP Range).
Tokenizing runs in `workers` processes. `source=` points any corpus at local files instead.
"""
import json
import multiprocessing as mp
import os
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from llmc_core.encodings import GPT2_EOT, gpt2_encoding
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


def download(url, dest, progress=True, timeout=60.0):
    """Download `url` to `dest`, resuming a partial `dest.part` left by an earlier attempt."""
    dest = Path(dest)
    if dest.is_file():
        return dest
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


def tokenize_document(text):
    """<|endoftext|> then the GPT-2 tokens of `text`, as uint16."""
    tokens = [GPT2_EOT] + gpt2_encoding().encode_ordinary(text)
    return np.asarray(tokens, dtype=np.uint16)


def tokenize_documents(texts, workers=1, chunksize=16):
    """Yield tokenize_document(t) for each text, in order, using `workers` processes."""
    if workers <= 1:
        yield from map(tokenize_document, texts)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(tokenize_document, texts, chunksize=chunksize)


class ShardWriter:
    """Packs token arrays into shards named <prefix>_<split>_<index:06d>.bin of shard_tokens tokens."""

    def __init__(self, out_dir, prefix, split, shard_tokens):
        self.out_dir, self.prefix, self.split, self.shard_tokens = Path(out_dir), prefix, split, shard_tokens
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
            write_shard(path, self.buffer[:self.filled])
            self.paths.append(path)
            self.total += self.filled
            self.index += 1
            self.filled = 0
        return self.paths


def write_split(texts, out_dir, prefix, split, shard_tokens, workers, progress, total=None):
    """Tokenize an iterable of texts into shards of one split; returns the shard paths."""
    writer = ShardWriter(out_dir, prefix, split, shard_tokens)
    for tokens in tqdm(tokenize_documents(texts, workers), total=total, unit="doc",
                       desc=f"{prefix} {split}", disable=not progress):
        writer.add(tokens)
    return writer.flush()


# ---------------------------------------------------------------------------------------------
# the corpora


def prepare_tinyshakespeare(out_dir):
    from llmc_core.datasets import tiny_shakespeare_tokens
    tokens = tiny_shakespeare_tokens()
    val, train = tokens[:SHAKESPEARE_VAL_TOKENS], tokens[SHAKESPEARE_VAL_TOKENS:]
    paths = [out_dir / "tiny_shakespeare_val.bin", out_dir / "tiny_shakespeare_train.bin"]
    write_shard(paths[0], val)
    write_shard(paths[1], train)
    return paths


def tinystories_texts(json_path):
    with open(json_path, encoding="utf-8") as f:
        return [story["story"].strip() for story in json.load(f)]


def prepare_tinystories(out_dir, source, workers, shard_tokens, progress):
    if source is None:
        archive = download(TINYSTORIES_URL, out_dir / "TinyStories_all_data.tar.gz", progress)
        source = out_dir / "raw"
        if not (source / "data00.json").is_file():
            with tarfile.open(archive) as tar:
                tar.extractall(source, filter="data")
    files = sorted(Path(source).glob("*.json"))
    if len(files) < 2:
        raise ValueError(f"{source} holds {len(files)} TinyStories .json files; need at least 2 (val = the first)")
    paths = write_split(tinystories_texts(files[0]), out_dir, "tinystories", "val", shard_tokens, workers, progress)
    train_texts = (text for f in files[1:] for text in tinystories_texts(f))
    return paths + write_split(train_texts, out_dir, "tinystories", "train", shard_tokens, workers, progress)


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


def prepare_fineweb_edu(out_dir, source, workers, shard_tokens, progress, files=FINEWEB_EDU_FILES):
    if source is None:
        raw = out_dir / "raw"
        sources = [download(FINEWEB_EDU_URL.format(index=i), raw / f"{i:03d}_00000.parquet", progress)
                   for i in range(files)]
    else:
        sources = sorted(p for p in Path(source).iterdir() if p.suffix in (".parquet", ".jsonl"))
    if not sources:
        raise ValueError(f"{source} holds no .parquet or .jsonl files with a 'text' field")
    # the first shard_tokens tokens are val, everything after is train (llm.c: shard 0 is val)
    val = ShardWriter(out_dir, "fineweb_edu", "val", shard_tokens)
    train = ShardWriter(out_dir, "fineweb_edu", "train", shard_tokens)
    for tokens in tqdm(tokenize_documents(text_files_texts(sources), workers), unit="doc",
                       desc="fineweb-edu", disable=not progress):
        if not val.paths:  # still filling the validation shard; what does not fit goes to train
            room = shard_tokens - val.filled
            val.add(tokens[:room])
            tokens = tokens[room:]
        train.add(tokens)
    return val.flush() + train.flush()


def prepare(name, data_dir=None, workers=None, shard_tokens=100_000_000, source=None, progress=True):
    """Write the train and val shards of corpus `name` to <data_dir>/<name>/; returns their paths."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; `llmc data prepare` knows {', '.join(DATASETS)}")
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
    out_dir = Path(data_dir or default_data_dir()) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or max(1, (os.cpu_count() or 2) - 1)
    if name == "tinyshakespeare":
        return prepare_tinyshakespeare(out_dir)
    if name == "tinystories":
        return prepare_tinystories(out_dir, source, workers, shard_tokens, progress)
    return prepare_fineweb_edu(out_dir, source, workers, shard_tokens, progress)


def shard_patterns(name, data_dir=None):
    """The (train, val) glob patterns of the shards that prepare(name) writes."""
    out_dir = Path(data_dir or default_data_dir()) / name
    return str(out_dir / "*_train*.bin"), str(out_dir / "*_val*.bin")
