"""Evaluation: validation loss (in nats per token and bits per byte) on held-out shards, and HellaSwag.

Bits per byte make runs with different tokenizers comparable: a loss of L nats per token over
a text of N tokens and M UTF-8 bytes is L * N / M nats per byte, and / ln 2 bits per byte.

HellaSwag (Zellers et al. 2019) gives a context and four endings, one right. A language
model picks the ending it finds most likely: the one with the lowest mean cross-entropy
over the ending's tokens ("acc_norm" in GPT-3's and llm.c's reports). Random guessing
scores 25%; GPT-2 (124M) scores about 29.4%.
"""
import json
import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from llmc_core.encodings import gpt2_encoding

HELLASWAG_VAL_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"


@torch.no_grad()
def val_loss(model, loader, batches, device, autocast=nullcontext):
    """The mean loss of `model` over the first `batches` batches of `loader` (which is reset)."""
    was_training = model.training
    model.eval()
    loader.reset()
    total = torch.zeros((), device=device)
    for _ in range(batches):
        x, y = loader.next_batch()
        with autocast():
            _, loss = model(x.to(device), y.to(device))
        total += loss.float()
    model.train(was_training)
    return total / batches


def bits_per_byte(nats_per_token, n_tokens, n_bytes):
    """Cross-entropy in bits per UTF-8 byte: nats/token x tokens/bytes / ln 2."""
    if n_bytes <= 0:
        raise ValueError(f"bits per byte needs a text of at least one byte, got {n_bytes} bytes")
    return nats_per_token * n_tokens / n_bytes / math.log(2)


def token_byte_lengths(enc):
    """(n_vocab,) int64: the UTF-8 bytes each token id stands for; 0 for special tokens like <|endoftext|>.

    Special tokens mark document boundaries, they are not text, so they count no bytes.
    """
    lengths = np.zeros(enc.n_vocab, dtype=np.int64)
    special = set(enc.special_tokens_set)
    for i in range(enc.n_vocab):
        try:
            piece = enc.decode_single_token_bytes(i)
        except KeyError:  # an id between the ranks and the special tokens
            continue
        if piece.decode("utf-8", errors="replace") not in special:
            lengths[i] = len(piece)
    return lengths


def count_bytes(tokens, lengths):
    """The UTF-8 bytes of the text that `tokens` (an int array) decode to, via token_byte_lengths."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.size and tokens.max() >= len(lengths):
        raise ValueError(f"token id {int(tokens.max())} is outside the tokenizer's {len(lengths)} ids: "
                         f"the shards were made with another tokenizer")
    return int(lengths[tokens].sum())


def val_text_size(loader, batches, lengths):
    """(tokens, bytes) of the targets that `val_loss` scores over the first `batches` batches of `loader`."""
    loader.reset()
    n_tokens = n_bytes = 0
    for _ in range(batches):
        _, y = loader.next_batch()
        n_tokens += y.numel()
        n_bytes += count_bytes(y.numpy().ravel(), lengths)
    loader.reset()
    return n_tokens, n_bytes


def read_hellaswag(path, limit=0):
    """Examples from a HellaSwag jsonl file: dicts with "ctx", four "endings" and a "label"."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no HellaSwag file at {path}; pass a hellaswag_val.jsonl path or leave it empty to download")
    examples = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            ex = json.loads(line)
            if not {"ctx", "endings", "label"} <= set(ex) or len(ex["endings"]) != 4 or ex["label"] not in range(4):
                raise ValueError(f"{path} line {n} is not a HellaSwag example: it needs ctx, 4 endings and "
                                 f"a label 0..3, got keys {sorted(ex)}")
            examples.append(ex)
            if limit and len(examples) == limit:
                break
    return examples


def hellaswag_batch(example, enc=None):
    """Tokens (4, T), completion mask (4, T) and label for one example, endings right-padded with 0."""
    enc = enc or gpt2_encoding()
    ctx = enc.encode_ordinary(example["ctx"])
    rows, masks = [], []
    for ending in example["endings"]:
        end = enc.encode_ordinary(" " + ending)  # the ending follows the context after a space
        rows.append(ctx + end)
        masks.append([0] * len(ctx) + [1] * len(end))
    T = max(len(r) for r in rows)
    tokens = torch.zeros(4, T, dtype=torch.long)
    mask = torch.zeros(4, T, dtype=torch.long)
    for i, (r, m) in enumerate(zip(rows, masks)):
        tokens[i, :len(r)] = torch.tensor(r)
        mask[i, :len(m)] = torch.tensor(m)
    return tokens, mask, example["label"]


@torch.no_grad()
def hellaswag_predict(model, tokens, mask, device, autocast=nullcontext):
    """The index (0..3) of the ending with the lowest mean loss over its own tokens."""
    tokens, mask = tokens.to(device), mask.to(device)
    with autocast():
        logits = model(tokens)  # (4, T, V or Vp)
    V = model.config.vocab_size
    logits = logits[:, :-1, :V].float()  # position t predicts token t + 1
    targets, target_mask = tokens[:, 1:], mask[:, 1:]
    losses = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none").view(targets.shape)
    mean_loss = (losses * target_mask).sum(1) / target_mask.sum(1)  # (4,)
    return int(mean_loss.argmin())


def hellaswag_accuracy(model, examples, device, autocast=nullcontext, rank=0, world_size=1):
    """(correct, total) over the examples this rank owns (every world_size-th, from rank)."""
    was_training = model.training
    model.eval()
    enc = gpt2_encoding()
    correct = total = 0
    for ex in examples[rank::world_size]:
        tokens, mask, label = hellaswag_batch(ex, enc)
        tokens, mask = tokens[:, -model.config.block_size:], mask[:, -model.config.block_size:]
        correct += hellaswag_predict(model, tokens, mask, device, autocast) == label
        total += 1
    model.train(was_training)
    return correct, total


def hellaswag_examples(path="", limit=0, cache_dir=None):
    """HellaSwag examples from `path`, or from the validation set downloaded once into cache_dir."""
    if not path:
        from llmc_core.train.prepare import default_data_dir, download
        dest = Path(cache_dir or default_data_dir()) / "hellaswag" / "hellaswag_val.jsonl"
        try:
            path = download(HELLASWAG_VAL_URL, dest)
        except OSError as e:  # offline, blocked, refused
            raise ConnectionError(f"could not download HellaSwag from {HELLASWAG_VAL_URL}: {e}. Copy that file to "
                                  f"{dest} or pass --hellaswag-path FILE.jsonl (or --hellaswag-every 0)") from e
    return read_hellaswag(path, limit)
