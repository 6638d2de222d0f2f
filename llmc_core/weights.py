"""GPT-2 weights in and out: Hugging Face state dicts and safetensors, llm.c model checkpoints.

Inside the course every GPT-2 parameter has its Hugging Face name and layout (see
llmc_core/gpt2.py): `wte.weight` (V, C), `h.{i}.attn.c_attn.weight` (C, 3C), ...
This module converts to and from the two formats real weights come in:

- Hugging Face: `model.safetensors` (or any GPT-2 state dict), keys with or without the
  `transformer.` prefix, plus buffers and a tied `lm_head.weight` that we drop.
- llm.c: `gpt2_124M.bin`, a header of 256 int32 then the 16 parameter tensors, each stacked
  over layers, matmul weights in nn.Linear layout (out, in), i.e. transposed from HF's Conv1D.
"""

import os
import urllib.request
from pathlib import Path

import numpy as np
import torch

from llmc_core.fileio import atomic_write_bytes
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.llmc_header import HEADER_BYTES, MODEL_MAGIC, header_bytes, read_header

# ---------------------------------------------------------------------------------------------
# Hugging Face state dicts


def hf_param_shapes(config: GPT2Config, vocab_rows: int | None = None) -> dict[str, tuple]:
    """name -> shape in Hugging Face's layout; wte has vocab_rows rows (default V)."""
    C = config.n_embd
    shapes = {"wte.weight": (vocab_rows or config.vocab_size, C), "wpe.weight": (config.block_size, C)}
    per_layer = {
        "ln_1.weight": (C,), "ln_1.bias": (C,),
        "attn.c_attn.weight": (C, 3 * C), "attn.c_attn.bias": (3 * C,),  # Conv1D: (in, out)
        "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,),
        "ln_2.weight": (C,), "ln_2.bias": (C,),
        "mlp.c_fc.weight": (C, 4 * C), "mlp.c_fc.bias": (4 * C,),
        "mlp.c_proj.weight": (4 * C, C), "mlp.c_proj.bias": (C,),
    }  # fmt: skip
    for i in range(config.n_layer):
        shapes.update({f"h.{i}.{name}": shape for name, shape in per_layer.items()})
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes


def normalize_hf_state_dict(state) -> dict[str, torch.Tensor]:
    """A Hugging Face GPT-2 state dict with our names: no `transformer.` prefix, parameters only.

    Dropped: the attention-mask buffers `attn.bias` / `attn.masked_bias` (constants, not
    weights; older checkpoints store them) and `lm_head.weight` (tied: it is `wte.weight`).
    Values become float torch tensors; Conv1D layouts are kept as they are, (in, out).
    """
    out = {}
    for key, value in state.items():
        name = key.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        out[name] = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    return out


def infer_config(state, n_head: int) -> GPT2Config:
    """The GPT2Config of a (normalized) state dict; heads cannot be read off the shapes, so pass n_head."""
    V, C = state["wte.weight"].shape
    T = state["wpe.weight"].shape[0]
    L = len({name.split(".")[1] for name in state if name.startswith("h.")})
    return GPT2Config(block_size=T, vocab_size=V, n_layer=L, n_head=n_head, n_embd=C)


def fit_vocab_rows(wte: torch.Tensor, rows: int) -> torch.Tensor:
    """wte with `rows` rows: padding rows added as zeros, or cut off (they are never used)."""
    if wte.shape[0] >= rows:
        return wte[:rows]
    return torch.cat([wte, wte.new_zeros(rows - wte.shape[0], wte.shape[1])])


def check_state_dict(state, config: GPT2Config, vocab_rows: int, source: str):
    """Raise ValueError naming `source` if `state` lacks a parameter, has an extra one, or a wrong shape."""
    expected = hf_param_shapes(config, vocab_rows)
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise ValueError(
            f"{source}: not a GPT-2 state dict for {config}: missing {missing[:5]}, unexpected {extra[:5]}"
            f"{' (' + str(len(missing) + len(extra)) + ' names in all)' if len(missing) + len(extra) > 10 else ''}"
        )
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise ValueError(f"{source}: {k} has shape {tuple(state[k].shape)}, expected {shape} for {config}")


def gpt2_from_state_dict(state, config: GPT2Config, **model_kwargs) -> GPT2:
    """A GPT2 (float32) holding the weights of a Hugging Face-style state dict.

    state may use `transformer.` prefixes and hold buffers or lm_head.weight (see
    normalize_hf_state_dict); wte may have V or more rows: it is fitted to the model's
    (padded or not). model_kwargs go to GPT2 (attention=..., padded_vocab=...).
    """
    state = normalize_hf_state_dict(state)
    model = GPT2(config, **model_kwargs)
    rows = model.wte.weight.shape[0]
    if "wte.weight" in state and state["wte.weight"].shape[0] >= config.vocab_size:
        state["wte.weight"] = fit_vocab_rows(state["wte.weight"], rows)
    check_state_dict(state, config, rows, source="state dict")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model


def read_safetensors(path) -> dict[str, torch.Tensor]:
    """The normalized GPT-2 state dict in a Hugging Face `model.safetensors` file."""
    import safetensors.torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no safetensors file at {path}")
    try:
        return normalize_hf_state_dict(safetensors.torch.load_file(str(path)))
    except safetensors.SafetensorError as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e}); delete it and download it again") from e


# ---------------------------------------------------------------------------------------------
# llm.c model checkpoints (train_gpt2.py write_model, train_gpt2.c gpt2_build_from_checkpoint)

LLMC_VERSIONS = {3: "float32", 5: "bfloat16"}  # tensor dtype by version; both pad the vocab to Vp
# the header (llmc_core.llmc_header): magic, version, maxT, V, L, NH, C, Vp, then zeros


def llmc_tensor_shapes(config: GPT2Config) -> list[tuple[str, tuple]]:
    """llm.c's 16 parameter tensors in file order, each stacked over the L layers."""
    L, C, Vp, T = config.n_layer, config.n_embd, config.padded_vocab_size, config.block_size
    return [
        ("wte", (Vp, C)), ("wpe", (T, C)),
        ("ln1w", (L, C)), ("ln1b", (L, C)),
        ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),  # (out, in): transposed from HF's (C, 3C)
        ("attprojw", (L, C, C)), ("attprojb", (L, C)),
        ("ln2w", (L, C)), ("ln2b", (L, C)),
        ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
        ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
        ("lnfw", (C,)), ("lnfb", (C,)),
    ]  # fmt: skip


# llm.c tensor -> (HF name within layer i, whether the HF tensor is the transpose)
LLMC_TO_HF = {
    "ln1w": ("ln_1.weight", False), "ln1b": ("ln_1.bias", False),
    "qkvw": ("attn.c_attn.weight", True), "qkvb": ("attn.c_attn.bias", False),
    "attprojw": ("attn.c_proj.weight", True), "attprojb": ("attn.c_proj.bias", False),
    "ln2w": ("ln_2.weight", False), "ln2b": ("ln_2.bias", False),
    "fcw": ("mlp.c_fc.weight", True), "fcb": ("mlp.c_fc.bias", False),
    "fcprojw": ("mlp.c_proj.weight", True), "fcprojb": ("mlp.c_proj.bias", False),
}  # fmt: skip


def state_to_llmc_tensors(state, config: GPT2Config) -> list[np.ndarray]:
    """HF-named state dict -> llm.c's 16 float32 arrays: layers stacked, matmul weights transposed, wte padded to Vp."""
    state = {k: torch.as_tensor(v).detach().cpu().float().numpy() for k, v in state.items()}
    wte = state["wte.weight"][: config.vocab_size]
    wte = np.concatenate([wte, np.zeros((config.padded_vocab_size - config.vocab_size, config.n_embd), np.float32)])
    tensors = {"wte": wte, "wpe": state["wpe.weight"], "lnfw": state["ln_f.weight"], "lnfb": state["ln_f.bias"]}
    for llmc_name, (hf_name, transposed) in LLMC_TO_HF.items():
        per_layer = [state[f"h.{i}.{hf_name}"] for i in range(config.n_layer)]
        tensors[llmc_name] = np.stack([w.T if transposed else w for w in per_layer])
    return [np.ascontiguousarray(tensors[name]) for name, _ in llmc_tensor_shapes(config)]


def llmc_tensors_to_state(tensors: dict[str, np.ndarray], config: GPT2Config) -> dict[str, torch.Tensor]:
    """llm.c's tensors (by llm.c name) -> HF-named float32 state dict; wte keeps its Vp rows."""
    state = {"wte.weight": tensors["wte"], "wpe.weight": tensors["wpe"]}
    for i in range(config.n_layer):
        for llmc_name, (hf_name, transposed) in LLMC_TO_HF.items():
            w = tensors[llmc_name][i]
            state[f"h.{i}.{hf_name}"] = w.T if transposed else w
    state["ln_f.weight"], state["ln_f.bias"] = tensors["lnfw"], tensors["lnfb"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def write_llmc_checkpoint(path, state_or_model, config: GPT2Config, dtype: str = "float32"):
    """Write a GPT-2 in llm.c's model format: version 3 (float32) or 5 (dtype="bfloat16").

    state_or_model: a GPT2 or a Hugging Face-style state dict for `config`. The file is
    written atomically; llm.c's train_gpt2.c reads version 3, train_gpt2.cu both.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' (llm.c version 3) or 'bfloat16' (version 5), got {dtype!r}")
    state = state_or_model.state_dict() if isinstance(state_or_model, torch.nn.Module) else state_or_model
    state = normalize_hf_state_dict(state)
    rows = state["wte.weight"].shape[0] if "wte.weight" in state else config.vocab_size
    check_state_dict(state, config, rows, source=f"writing {path}")
    version = 3 if dtype == "float32" else 5
    header = header_bytes(MODEL_MAGIC, version, config.block_size, config.vocab_size, config.n_layer,
                          config.n_head, config.n_embd, config.padded_vocab_size)
    payload = np.concatenate([t.ravel() for t in state_to_llmc_tensors(state, config)]).astype("<f4")
    if dtype == "bfloat16":
        # numpy has no bfloat16: round in torch, then store the 16-bit patterns as int16
        payload = torch.from_numpy(payload).to(torch.bfloat16).view(torch.int16).numpy().astype("<i2")
    atomic_write_bytes(path, header + payload.tobytes())


def read_llmc_checkpoint(path) -> tuple[GPT2Config, dict[str, torch.Tensor]]:
    """(config, HF-named float32 state dict) from an llm.c model checkpoint (version 3 or 5).

    wte keeps the file's Vp rows (the padding rows are zeros in llm.c's files); GPT2 models
    and load_params_numpy fit it to V. Raises ValueError naming the file when it is not a
    model checkpoint, has an unknown version, impossible sizes, or is truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no llm.c checkpoint at {path}")
    fix = "re-export it with llm.c's train_gpt2.py or write_llmc_checkpoint"
    header, size = read_header(path, MODEL_MAGIC, tuple(LLMC_VERSIONS), fix)
    version = int(header[1])
    T, V, L, NH, C, Vp = (int(x) for x in header[2:8])
    try:
        config = GPT2Config(block_size=T, vocab_size=V, n_layer=L, n_head=NH, n_embd=C)
    except ValueError as e:
        raise ValueError(f"{path}: impossible sizes in the header: {e}") from e
    if Vp != config.padded_vocab_size:
        raise ValueError(f"{path}: padded vocab {Vp} in the header, expected {config.padded_vocab_size} for V={V}")
    shapes = llmc_tensor_shapes(config)
    n_params = sum(int(np.prod(s)) for _, s in shapes)
    itemsize = 4 if version == 3 else 2
    expected = HEADER_BYTES + itemsize * n_params
    if size != expected:
        problem = "truncated" if size < expected else f"{size - expected} bytes too long"
        raise ValueError(f"{path}: {problem}: {size} bytes, expected {expected} for {config} (version {version})")
    if version == 3:
        flat = np.fromfile(path, dtype="<f4", offset=HEADER_BYTES, count=n_params)
    else:  # bfloat16 patterns are the high halves of float32s
        bits = np.fromfile(path, dtype="<u2", offset=HEADER_BYTES, count=n_params)
        flat = (bits.astype(np.uint32) << 16).view(np.float32)
    tensors, offset = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        tensors[name] = flat[offset : offset + n].reshape(shape)
        offset += n
    return config, llmc_tensors_to_state(tensors, config)


def write_tiny_checkpoint(path, config: GPT2Config | str = "tiny-gpt2vocab", seed: int = 0) -> GPT2Config:
    """Write a randomly initialized GPT-2 (GPT-2 init, `seed`) as an llm.c float32 checkpoint.

    For working offline: lessons that load "real" weights can load this file instead.
    config is a GPT2Config or a preset name; returns the config.
    """
    config = GPT2Config.preset(config) if isinstance(config, str) else config
    write_llmc_checkpoint(path, GPT2(config, seed=seed), config)
    return config


# ---------------------------------------------------------------------------------------------
# One entry point for every source


def load_state(source, n_head: int | None = None) -> tuple[GPT2Config | None, dict[str, torch.Tensor]]:
    """(config or None, normalized state dict) from a path (.safetensors or llm.c .bin) or a state dict.

    llm.c files carry their config; for a safetensors file or a state dict the config is
    inferred from the shapes when n_head is given, else None.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix == ".safetensors":
            state = read_safetensors(path)
        else:
            return read_llmc_checkpoint(path)
    elif hasattr(source, "items"):
        state = normalize_hf_state_dict(source)
    else:
        raise TypeError(f"expected a path or a state dict, got {type(source).__name__}")
    return (infer_config(state, n_head) if n_head else None), state


def load_params_numpy(source, n_head: int | None = None) -> dict[str, np.ndarray]:
    """HF-named float32 numpy arrays from a path (.safetensors, llm.c .bin) or a state dict.

    wte is (V, C) as in Hugging Face's layout: llm.c's padding rows are cut off, which needs
    V: read from an llm.c header, or from `n_head`-inferred sizes otherwise (else wte is kept).
    """
    config, state = load_state(source, n_head)
    params = {k: v.detach().cpu().float().numpy() for k, v in state.items()}
    if config is not None:
        params["wte.weight"] = params["wte.weight"][: config.vocab_size]
    return params


def load_gpt2(source, n_head: int | None = None, **model_kwargs) -> GPT2:
    """A GPT2 with the weights at `source` (path or state dict); n_head is needed unless source is an llm.c file."""
    config, state = load_state(source, n_head)
    if config is None:
        what = source if isinstance(source, (str, Path)) else "a state dict"
        raise ValueError(f"cannot tell the number of heads of {what} from its shapes: pass n_head=")
    return gpt2_from_state_dict(state, config, **model_kwargs)


# ---------------------------------------------------------------------------------------------
# Pretrained GPT-2 from the Hugging Face hub

HF_REPOS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "llmc"


def download(url: str, dest: Path, timeout: float = 30.0):
    """Download url to dest (atomically, through dest.part), with a progress bar."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "llmc"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except BaseException:
        part.unlink(missing_ok=True)  # never leave half a file that looks like a download
        raise
    os.replace(part, dest)


def pretrained_path(name: str = "gpt2", cache_dir=None) -> Path:
    """Where from_pretrained keeps the safetensors file of `name`."""
    return Path(cache_dir or default_cache_dir()) / "hf" / name / "model.safetensors"


def from_pretrained(name: str = "gpt2", cache_dir=None, **model_kwargs) -> GPT2:
    """OpenAI's pretrained GPT-2 `name` as a GPT2, downloaded once from the Hugging Face hub and cached.

    When the download fails (offline, blocked), the error says what failed and how to go
    on: put model.safetensors at the cache path by hand, or use a tiny random checkpoint
    (write_tiny_checkpoint + load_gpt2) that exercises the same code.
    """
    if name not in HF_REPOS:
        raise ValueError(f"unknown pretrained GPT-2 {name!r}; choose one of {sorted(HF_REPOS)}")
    path = pretrained_path(name, cache_dir)
    if not path.is_file():
        url = f"https://huggingface.co/{HF_REPOS[name]}/resolve/main/model.safetensors"
        try:
            download(url, path)
        except OSError as e:  # URLError, HTTPError, timeouts, refused connections
            raise ConnectionError(
                f"could not download {name} from {url}: {e}.\n"
                f"To go on offline, either copy that file (from a machine with internet) to {path},\n"
                f"or use a tiny random GPT-2 that exercises the same code:\n"
                f"    from llmc_core.weights import write_tiny_checkpoint, load_gpt2\n"
                f"    write_tiny_checkpoint('tiny.bin'); model = load_gpt2('tiny.bin')"
            ) from e
    return gpt2_from_state_dict(read_safetensors(path), GPT2Config.preset(name), **model_kwargs)
