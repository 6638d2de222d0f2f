"""Loading weights for the engine, with every value checked: a bad file gets a ValueError naming it.

Three sources: an `llmc train` run (its checkpoint.pt, read by llmc_core.train.checkpoint; GPT-2
or the modern recipe of llmc_core/modern.py), a Hugging Face GPT-2 `model.safetensors`, and an
llm.c model file (gpt2_124M.bin). The readers in llmc_core/weights.py check each format's
structure (magic, version, sizes); `check_weights` then checks what the engine relies on: a
recipe it implements, every parameter of that architecture present with its shape, a float
dtype, and finite values (a NaN or Inf weight would poison every token after it).
"""
import json
import math
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from llmc_core.gpt2 import GPT2Config
from llmc_core.inference.checks import require
from llmc_core.modern import Recipe
from llmc_core.weights import fit_vocab_rows, hf_param_shapes, normalize_hf_state_dict

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
GPT2_HEAD_SIZE = 64  # every OpenAI GPT-2 size has 64 channels per head
ENGINE_OPTIONS = ("rope", "norm", "qk_norm", "mlp", "softcap", "untie_head")  # the Recipe fields it implements
VOCAB_ROWS = ("wte.weight", "lm_head")  # (rows, C) tables that may carry padding rows beyond V


class LoadedModel(NamedTuple):
    config: GPT2Config
    state: dict  # checked, Hugging Face names; wte (and lm_head) cut to V rows
    tokenizer: object  # the checkpoint's tiktoken Encoding, or None (then GPT-2's)
    recipe: Recipe  # the architecture's options; Recipe() is GPT-2


def check_recipe(recipe, config: GPT2Config, source: str):
    """ValueError naming the option unless the engine implements every option `recipe` turns on."""
    require(isinstance(recipe, Recipe), f"{source}: recipe must be a llmc_core.modern.Recipe, got {recipe!r:.80}")
    unknown = [f"{f.name}={getattr(recipe, f.name)!r}" for f in fields(recipe)
               if f.name not in ENGINE_OPTIONS and getattr(recipe, f.name) != f.default]
    require(not unknown, f"{source}: the inference engine cannot run a model with {', '.join(unknown)}: it implements "
                         f"only {', '.join(ENGINE_OPTIONS)}; sample the model with its own forward pass "
                         f"(llmc_core.train.sample.generate_recomputing)")
    require(recipe.norm in ("layer", "rms"), f"{source}: norm={recipe.norm!r}: the engine has 'layer' and 'rms'")
    require(recipe.mlp in ("gelu", "relu2"), f"{source}: mlp={recipe.mlp!r}: the engine has 'gelu' and 'relu2'")
    cap = recipe.softcap
    require(isinstance(cap, (int, float)) and math.isfinite(cap) and cap >= 0,
            f"{source}: softcap={cap!r}: the cap must be a finite number >= 0 (0: no cap)")
    require(not recipe.rope or config.head_size % 2 == 0,
            f"{source}: rope=True with an odd head size ({config.head_size}): RoPE rotates pairs of channels")


def param_shapes(config: GPT2Config, recipe: Recipe) -> dict[str, tuple]:
    """name -> shape of every parameter of a model with this recipe, vocabulary tables with V rows."""
    shapes = hf_param_shapes(config)
    if recipe.rope:  # positions are rotations of q and k: no learned table
        del shapes["wpe.weight"]
    if recipe.norm == "rms":  # RMSNorm has a gain and no shift
        shapes = {k: v for k, v in shapes.items() if not ("ln_" in k and k.endswith(".bias"))}
    if recipe.qk_norm:  # a gain for every head's queries and one for its keys
        for i in range(config.n_layer):
            shapes[f"h.{i}.attn.q_norm"] = shapes[f"h.{i}.attn.k_norm"] = (config.head_size,)
    if recipe.untie_head:
        shapes["lm_head"] = (config.vocab_size, config.n_embd)
    return shapes


def check_names_and_shapes(state, config: GPT2Config, recipe: Recipe, source: str):
    """ValueError naming `source` if `state` lacks a parameter of the recipe's model, has one more, or a wrong shape."""
    expected = param_shapes(config, recipe)
    model = f"GPT-2{' with ' + ', '.join(recipe.changes()) if recipe.changes() else ''}, {config}"
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    require(not missing and not extra,
            f"{source}: not the state dict of a {model}: missing {missing[:5]}, unexpected {extra[:5]}"
            f"{' (' + str(len(missing) + len(extra)) + ' names in all)' if len(missing) + len(extra) > 10 else ''}; "
            f"is the recipe the one the model was trained with?")
    for k, shape in expected.items():
        require(tuple(state[k].shape) == shape, f"{source}: {k} has shape {tuple(state[k].shape)}, "
                                                f"expected {shape} for a {model}")


def check_weights(state, config: GPT2Config, source: str, recipe: Recipe | None = None) -> dict[str, torch.Tensor]:
    """The state dict `state` of a model of `config` and `recipe` (default GPT-2), vocabulary tables cut to V
    rows, checked; ValueError naming `source` if not.

    Checks: a recipe the engine implements, a mapping of tensors, every parameter present with its
    shape, float dtypes, finite values.
    """
    recipe = Recipe() if recipe is None else recipe
    check_recipe(recipe, config, source)
    require(hasattr(state, "items"), f"{source}: expected a state dict of tensors, got {type(state).__name__}")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, (torch.Tensor, np.ndarray))]
    require(not bad, f"{source}: not a GPT-2 state dict: entries {bad[:3]} are not named tensors")
    state = normalize_hf_state_dict(state)
    not_float = [f"{k} ({v.dtype})" for k, v in state.items() if v.dtype not in FLOAT_DTYPES]
    require(not not_float, f"{source}: weights must be floating point; {not_float[:3]} are not")
    for name in VOCAB_ROWS:
        table = state.get(name)
        if table is not None and table.dim() == 2 and table.shape[0] >= config.vocab_size:
            state[name] = fit_vocab_rows(table, config.vocab_size)  # padding rows are never used
    check_names_and_shapes(state, config, recipe, source)
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


def recipe_from_checkpoint(ckpt: dict, source: str) -> Recipe:
    """The architecture options a training checkpoint's config records (none: GPT-2).

    A setting this version's TrainConfig does not know (written by a newer llmc) may change the
    model, and TrainConfig.from_dict would drop it silently: the engine refuses it, by name.
    """
    from llmc_core.train.config import TrainConfig
    saved = ckpt.get("config") or {}
    require(isinstance(saved, dict), f"{source}: its config is not a dict")
    unknown = sorted(str(k) for k in saved if k not in {f.name for f in fields(TrainConfig)})
    require(not unknown, f"{source}: its config has settings this version of llmc does not know: {unknown[:5]}; "
                         f"they may change the model, so the engine will not guess: use the llmc that trained it")
    try:
        return Recipe.from_config(TrainConfig.from_dict(saved))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: its training config is invalid: {e}") from e


def read_train_checkpoint(path) -> LoadedModel:
    """(config, unchecked state dict, tokenizer or None, recipe) from an `llmc train` run folder or checkpoint."""
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
    return LoadedModel(config, ckpt["model"], tokenizer, recipe_from_checkpoint(ckpt, str(path)))


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


def read_model(source, n_head: int | None = None) -> LoadedModel:
    """(config, checked state dict, tokenizer or None, recipe) from a run folder, checkpoint.pt, .safetensors or
    llm.c .bin (those two hold GPT-2 only)."""
    from llmc_core.weights import read_llmc_checkpoint
    path = Path(source)
    require(path.exists(), f"no model at {path}; pass a run folder of `llmc train`, its checkpoint.pt, "
                           f"a Hugging Face model.safetensors or an llm.c .bin model file")
    tokenizer, recipe = None, Recipe()
    if path.is_dir() or path.suffix == ".pt":
        config, state, tokenizer, recipe = read_train_checkpoint(path)
    elif path.suffix == ".safetensors":
        config, state = read_safetensors_model(path, n_head)
    else:
        config, state = read_llmc_checkpoint(path)  # checks magic, version, sizes first
        check_llmc_header_padding(path)
    return LoadedModel(config, check_weights(state, config, str(path), recipe), tokenizer, recipe)


def load_engine(source, *, batch_size: int = 1, max_len: int | None = None, device="cpu", n_head=None):
    """(Engine, tokenizer or None) for the model at `source` (see read_model)."""
    from llmc_core.inference.engine import Engine
    config, state, tokenizer, recipe = read_model(source, n_head)
    return Engine(config, state, recipe=recipe, batch_size=batch_size, max_len=max_len, device=device), tokenizer
