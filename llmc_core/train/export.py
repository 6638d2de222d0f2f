"""llm.c's tokenizer file and debug state, so that llm.c's C code can run and check a model trained here.

- Tokenizer (`gpt2_tokenizer.bin`, read by llm.c's llmc/tokenizer.h): header magic 20240328,
  version 2, [2] the number of ids n, [3] the <|endoftext|> id; then for each id 0..n-1 one
  byte holding its length (1..255) and the token's bytes. Version 1 has no EOT slot (50256).
- Debug state (`gpt2_124M_debug_state.bin`, read by llm.c's test_gpt2.c): header magic 20240327,
  version 2, [2] B, [3] T; then inputs x and targets y as int32 (B, T), the logits as float32
  (B, T, V) (not padded), the mean loss as one float32, and the gradients of the 16 parameter
  tensors in the order and layout of llm.c's model file (llmc_core.weights), dwte padded to Vp.

`llmc export RUN MODEL.bin --tokenizer-bin FILE --debug-state FILE` writes all three.
"""
from pathlib import Path

import numpy as np
import torch

from llmc_core.fileio import atomic_write_bytes
from llmc_core.gpt2 import GPT2Config
from llmc_core.llmc_header import (
    DEBUG_STATE_MAGIC,
    HEADER_BYTES,
    TOKENIZER_MAGIC,
    check_unused,
    header_bytes,
    read_header,
)
from llmc_core.weights import llmc_tensor_shapes, state_to_llmc_tensors

TOKENIZER_VERSION = 2
DEBUG_STATE_VERSION = 2
GPT2_EOT = 50256  # what a version 1 tokenizer file implies


def write_llmc_tokenizer(enc, path):
    """Write the tiktoken Encoding `enc` as llm.c's tokenizer file (version 2, with its EOT id)."""
    tokens = [enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)]
    bad = [i for i, t in enumerate(tokens) if not 0 < len(t) < 256]
    if bad:
        raise ValueError(f"token {bad[0]} of {enc.name} is {len(tokens[bad[0]])} bytes long; llm.c's tokenizer file "
                         f"holds tokens of 1..255 bytes")
    body = b"".join(bytes([len(t)]) + t for t in tokens)
    atomic_write_bytes(path, header_bytes(TOKENIZER_MAGIC, TOKENIZER_VERSION, enc.n_vocab, enc.eot_token) + body)


def read_llmc_tokenizer(path) -> tuple[list[bytes], int]:
    """(the bytes of every token id, the <|endoftext|> id) from an llm.c tokenizer file, checked.

    ValueError naming the file if the header, a length byte or the size is wrong.
    """
    fix = "write it again with `llmc export RUN MODEL.bin --tokenizer-bin FILE`"
    header, size = read_header(path, TOKENIZER_MAGIC, (1, 2), fix)
    n = int(header[2])
    eot = int(header[3]) if header[1] == 2 else GPT2_EOT
    check_unused(path, header, 4 if header[1] == 2 else 3, "an llm.c tokenizer file")
    if header[1] == 1 and n != 50257:
        raise ValueError(f"{path}: a version 1 tokenizer file must hold GPT-2's 50257 tokens, it says {n}; {fix}")
    if not 0 <= eot < n:
        raise ValueError(f"{path}: <|endoftext|> id {eot} is outside the {n} tokens; {fix}")
    data = Path(path).read_bytes()[HEADER_BYTES:]
    tokens, at = [], 0
    for i in range(n):
        length = data[at] if at < len(data) else 0
        if length == 0 or at + 1 + length > len(data):
            raise ValueError(f"{path}: token {i} of {n} is {'cut short' if at < len(data) else 'missing'} "
                             f"(length byte {length} at byte {HEADER_BYTES + at}); the file is damaged; {fix}")
        tokens.append(data[at + 1: at + 1 + length])
        at += 1 + length
    if at != len(data):
        raise ValueError(f"{path}: {len(data) - at} bytes after the last of its {n} tokens; the file is damaged; {fix}")
    return tokens, eot


def debug_state(model, x, y) -> dict:
    """One forward and backward pass of `model` on inputs x and targets y (B, T): what llm.c's test checks.

    Returns x, y (int32), logits (B, T, V float32), loss (float) and grads, llm.c's 16 gradient
    arrays in file order. The model's .grad fields are left as they were found (None).
    """
    model.zero_grad(set_to_none=True)
    logits, loss = model(torch.as_tensor(x, dtype=torch.long), torch.as_tensor(y, dtype=torch.long))
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    V = model.config.vocab_size
    return {"x": np.asarray(x, np.int32), "y": np.asarray(y, np.int32),
            "logits": logits[..., :V].detach().float().numpy(), "loss": loss.item(),
            "grads": state_to_llmc_tensors(grads, model.config)}


def write_debug_state(path, model, x, y) -> dict:
    """Write llm.c's debug state for one step of `model` on (x, y); returns what debug_state computed."""
    state = debug_state(model, x, y)
    B, T = state["x"].shape
    parts = [state["x"].astype("<i4"), state["y"].astype("<i4"), state["logits"].astype("<f4"),
             np.float32(state["loss"]).astype("<f4")] + [g.astype("<f4") for g in state["grads"]]
    atomic_write_bytes(path, header_bytes(DEBUG_STATE_MAGIC, DEBUG_STATE_VERSION, B, T)
                       + b"".join(p.tobytes() for p in parts))
    return state


def read_debug_state(path, config: GPT2Config) -> dict:
    """The contents of an llm.c debug state for a model of `config`.

    As debug_state returns them, grads by llm.c name.
    """
    fix = "write it again with `llmc export RUN MODEL.bin --debug-state FILE`"
    header, size = read_header(path, DEBUG_STATE_MAGIC, (DEBUG_STATE_VERSION,), fix)
    B, T, V = int(header[2]), int(header[3]), config.vocab_size
    check_unused(path, header, 4, "an llm.c debug state")
    shapes = [("x", (B, T), "<i4"), ("y", (B, T), "<i4"), ("logits", (B, T, V), "<f4"), ("loss", (), "<f4")]
    shapes += [(name, shape, "<f4") for name, shape in llmc_tensor_shapes(config)]
    expected = HEADER_BYTES + 4 * sum(int(np.prod(s)) for _, s, _ in shapes)
    if B < 1 or not 1 <= T <= config.block_size or size != expected:
        raise ValueError(f"{path}: B={B}, T={T} in the header; for {config} the file should be {expected} bytes, "
                         f"it is {size}: it is damaged or belongs to another model; {fix}")
    flat = np.fromfile(path, dtype=np.uint8, offset=HEADER_BYTES)
    out, at = {"grads": {}}, 0
    for name, shape, dtype in shapes:
        n = 4 * int(np.prod(shape))
        array = flat[at: at + n].view(dtype).reshape(shape)
        at += n
        if name in ("x", "y", "logits", "loss"):
            out[name] = float(array) if name == "loss" else array
        else:
            out["grads"][name] = array
    if out["x"].min() < 0 or out["x"].max() >= V or out["y"].min() < 0 or out["y"].max() >= V:
        raise ValueError(f"{path}: token ids outside 0..{V - 1} in x or y; the file is damaged; {fix}")
    return out


def first_batch(enc, B, T):
    """llm.c's debug batch, as its test uses: the first B*T+1 tokens of tiny Shakespeare's validation text."""
    from llmc_core.datasets import tiny_shakespeare_plays
    tokens = np.asarray([enc.eot_token] + enc.encode_ordinary(tiny_shakespeare_plays()[0][:20 * B * T]))
    if len(tokens) < B * T + 1:
        raise ValueError(f"the tokenizer {enc.name} packs the text too tightly for a {B}x{T} batch")
    window = tokens[: B * T + 1]
    return window[:-1].reshape(B, T), window[1:].reshape(B, T)


def export_llmc_extras(run_dir, model, tokenizer_out=None, debug_out=None, B=4, T=64):
    """Write the run's tokenizer and/or a debug state in llm.c's formats; returns lines saying what was written."""
    if not (tokenizer_out or debug_out):
        return []
    from llmc_core.tokenizer import describe, load_tokenizer, tokenizer_from_dict
    from llmc_core.train.checkpoint import checkpoint_path, load_checkpoint
    saved = load_checkpoint(run_dir).get("tokenizer")
    enc = tokenizer_from_dict(saved, f"{checkpoint_path(run_dir)} tokenizer") if saved else load_tokenizer("gpt2")
    if enc.n_vocab != model.config.vocab_size:
        raise ValueError(f"the run's tokenizer {describe(enc)} does not match the model's {model.config.vocab_size} "
                         f"token ids; the checkpoint is inconsistent")
    lines = []
    if tokenizer_out:
        write_llmc_tokenizer(enc, tokenizer_out)
        lines.append(f"wrote {tokenizer_out} (llm.c tokenizer, version 2, {enc.n_vocab} tokens, EOT {enc.eot_token})")
    if debug_out:
        x, y = first_batch(enc, B, min(T, model.config.block_size))
        state = write_debug_state(debug_out, model.float().cpu(), x, y)
        lines.append(f"wrote {debug_out} (llm.c debug state, B={x.shape[0]}, T={x.shape[1]}, loss {state['loss']:.6f})")
    return lines
