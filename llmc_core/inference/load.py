"""Loading weights for the engine, with every value checked: a bad file gets a ValueError naming it.

Three sources: an `llmc train` run (its checkpoint.pt, read by llmc_core.train.checkpoint), a
Hugging Face GPT-2 `model.safetensors`, and an llm.c model file (gpt2_124M.bin). The readers in
llmc_core/weights.py check each format's structure (magic, version, sizes); `check_weights`
then checks what the engine relies on: every GPT-2 parameter present with its shape, a float
dtype, and finite values (a NaN or Inf weight would poison every token after it).
"""
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from llmc_core.gpt2 import GPT2Config
from llmc_core.inference.checks import require
from llmc_core.weights import check_state_dict, fit_vocab_rows, normalize_hf_state_dict

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
GPT2_HEAD_SIZE = 64  # every OpenAI GPT-2 size has 64 channels per head


def check_weights(state, config: GPT2Config, source: str) -> dict[str, torch.Tensor]:
    """The GPT-2 state dict `state` for `config`, wte cut to V rows, checked; ValueError naming `source` if not.

    Checks: a mapping of tensors, every parameter present with its shape, float dtypes, finite values.
    """
    require(hasattr(state, "items"), f"{source}: expected a state dict of tensors, got {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, (torch.Tensor, np.ndarray))]
    require(not bad, f"{source}: not a GPT-2 state dict: entries {bad[:3]} are not named tensors")
    state = normalize_hf_state_dict(state)
    not_float = [f"{k} ({v.dtype})" for k, v in state.items() if v.dtype not in FLOAT_DTYPES]
    require(not not_float, f"{source}: weights must be floating point; {not_float[:3]} are not")
    wte = state.get("wte.weight")
    if wte is not None and wte.dim() == 2 and wte.shape[0] >= config.vocab_size:
        state["wte.weight"] = fit_vocab_rows(wte, config.vocab_size)  # padding rows are never used
    check_state_dict(state, config, config.vocab_size, source=source)
    for name, t in state.items():
        n_bad = int((~torch.isfinite(t)).sum())
        require(n_bad == 0, f"{source}: {name} holds {n_bad} NaN or Inf values: the weights are corrupt "
                            f"(a diverged run or a damaged file); use an earlier checkpoint or re-export the model")
    return state


def config_from_checkpoint(ckpt: dict, source: str) -> GPT2Config:
    """The GPT2Config a training checkpoint records (its model_config, else its training config)."""
    model_config = ckpt.get("model_config")
    if model_config is None:
        from llmc_core.train.config import TrainConfig
        require(isinstance(ckpt["config"], dict), f"{source}: its config is not a dict")
        return TrainConfig.from_dict(ckpt["config"]).model_config()
    fields = {"block_size", "vocab_size", "n_layer", "n_head", "n_embd"}
    require(isinstance(model_config, dict) and set(model_config) == fields,
            f"{source}: model_config should hold exactly {sorted(fields)}, got {model_config!r:.200}")
    try:
        return GPT2Config(**model_config)
    except ValueError as e:
        raise ValueError(f"{source}: impossible model sizes: {e}") from e


def check_zip_crcs(path):
    """Raise ValueError unless every member of the zip archive at path matches its CRC-32.

    torch.save writes a zip archive with a CRC-32 of each member, but torch.load does not check
    them: a flipped bit in a tensor would load as a different weight. Python's zipfile does.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as e:  # BadZipFile, EOFError, zlib errors, ...: every way a damaged archive fails
        raise ValueError(f"{path}: not a readable checkpoint archive ({type(e).__name__}: {e}); "
                         f"the file is damaged or not a checkpoint: use another checkpoint") from e
    require(bad is None, f"{path}: the checkpoint is damaged: {bad} does not match its checksum (CRC-32); "
                         f"use another checkpoint")


def read_train_checkpoint(path) -> tuple[GPT2Config, dict, object]:
    """(config, state dict, tokenizer or None) from an `llmc train` run folder or checkpoint file."""
    from llmc_core.train.checkpoint import checkpoint_path, load_checkpoint
    if checkpoint_path(path).is_file():
        check_zip_crcs(checkpoint_path(path))
    ckpt = load_checkpoint(path)
    require(isinstance(ckpt, dict), f"{path}: not an llmc training checkpoint")
    config = config_from_checkpoint(ckpt, str(path))
    tokenizer = None
    if ckpt.get("tokenizer") is not None:
        from llmc_core.tokenizer import tokenizer_from_dict
        tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    return config, ckpt["model"], tokenizer


def read_safetensors_model(path, n_head: int | None = None) -> tuple[GPT2Config, dict]:
    """(config, state dict) of a Hugging Face GPT-2 model.safetensors.

    Heads cannot be read off the shapes: n_head, else config.json beside the file, else C / 64.
    """
    from llmc_core.weights import read_safetensors
    state = read_safetensors(path)
    config_json = Path(path).with_name("config.json")
    if n_head is None and config_json.is_file():
        n_head = json.loads(config_json.read_text()).get("n_head")
    wte, wpe = state.get("wte.weight"), state.get("wpe.weight")
    require(wte is not None and wpe is not None and wte.dim() == 2 and wpe.dim() == 2,
            f"{path}: not a GPT-2 model: wte.weight and wpe.weight (2-D) are missing")
    n_layer = len({name.split(".")[1] for name in state if name.startswith("h.")})
    C = wte.shape[1]
    try:
        return GPT2Config(block_size=wpe.shape[0], vocab_size=wte.shape[0], n_layer=n_layer,
                          n_head=n_head or max(C // GPT2_HEAD_SIZE, 1), n_embd=C), state
    except ValueError as e:
        raise ValueError(f"{path}: impossible model sizes ({e}); pass n_head if it is not C / 64") from e


def check_llmc_header_padding(path):
    """Raise ValueError unless ints 8..255 of an llm.c model header are zero, as llm.c writes them.

    The readers use only the first 8 ints; a nonzero one in the rest means the header is damaged.
    """
    header = np.fromfile(path, dtype="<i4", count=256)
    if len(header) == 256:  # a shorter file is reported as truncated by the reader
        nonzero = np.flatnonzero(header[8:]) + 8
        require(len(nonzero) == 0, f"{path}: damaged llm.c header: int {nonzero[:3].tolist()} should be 0 "
                                   f"(llm.c writes only the first 8); re-export or download the file again")


def read_model(source, n_head: int | None = None) -> tuple[GPT2Config, dict, object]:
    """(config, checked state dict, tokenizer or None) from a run folder, checkpoint.pt, .safetensors or llm.c .bin."""
    from llmc_core.weights import read_llmc_checkpoint
    path = Path(source)
    require(path.exists(), f"no model at {path}; pass a run folder of `llmc train`, its checkpoint.pt, "
                           f"a Hugging Face model.safetensors or an llm.c .bin model file")
    tokenizer = None
    if path.is_dir() or path.suffix == ".pt":
        config, state, tokenizer = read_train_checkpoint(path)
    elif path.suffix == ".safetensors":
        config, state = read_safetensors_model(path, n_head)
    else:
        config, state = read_llmc_checkpoint(path)  # checks magic, version, sizes first
        check_llmc_header_padding(path)
    return config, check_weights(state, config, source=str(path)), tokenizer


def load_engine(source, *, batch_size: int = 1, max_len: int | None = None, device="cpu", n_head=None):
    """(Engine, tokenizer or None) for the model at `source` (see read_model)."""
    from llmc_core.inference.engine import Engine
    config, state, tokenizer = read_model(source, n_head)
    return Engine(config, state, batch_size=batch_size, max_len=max_len, device=device), tokenizer
