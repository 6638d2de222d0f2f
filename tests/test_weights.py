"""Weights in and out: llm.c checkpoints, Hugging Face state dicts and safetensors, the offline path."""

import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from llmc_core import weights
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.weights import (
    gpt2_from_state_dict,
    load_gpt2,
    load_params_numpy,
    read_llmc_checkpoint,
    write_llmc_checkpoint,
    write_tiny_checkpoint,
)

CONFIGS = {
    "tiny": GPT2Config.preset("tiny"),  # V = 64, padded to 128
    "odd": GPT2Config(block_size=20, vocab_size=101, n_layer=3, n_head=4, n_embd=48),
}


def random_state(config, seed):
    """A GPT2 state dict with every value random (biases and layernorms too), so no tensor can hide."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in GPT2(config).state_dict().items()}


def batch(config, seed, B=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (B, config.block_size), generator=g)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_llmc_write_read_gives_identical_tensors(name, tmp_path):
    config = CONFIGS[name]
    state = random_state(config, seed=1)
    path = tmp_path / "model.bin"
    write_llmc_checkpoint(path, state, config)
    read_config, read_state = read_llmc_checkpoint(path)
    assert read_config == config
    assert read_state.keys() == state.keys()
    V = config.vocab_size
    assert read_state["wte.weight"].shape == (config.padded_vocab_size, config.n_embd)
    assert torch.equal(read_state["wte.weight"][:V], state["wte.weight"])
    assert read_state["wte.weight"][V:].abs().max().item() == 0.0  # llm.c pads with zeros
    for k in state:
        if k != "wte.weight":
            assert torch.equal(read_state[k], state[k]), k


def test_llmc_bfloat16_round_trip_is_torch_rounding(tmp_path):
    config = CONFIGS["odd"]
    state = random_state(config, seed=2)
    path = tmp_path / "model_bf16.bin"
    write_llmc_checkpoint(path, state, config, dtype="bfloat16")
    assert path.stat().st_size == 1024 + 2 * sum(int(np.prod(s)) for _, s in weights.llmc_tensor_shapes(config))
    _, read_state = read_llmc_checkpoint(path)
    for k, v in state.items():
        got = read_state[k][: v.shape[0]]
        assert torch.equal(got, v.to(torch.bfloat16).float()), k  # exactly torch's round-to-nearest-even


def test_llmc_header_and_layout_read_independently(tmp_path):
    """Parse the file with plain numpy from llm.c's documented layout and compute with llm.c's matmul convention."""
    config = CONFIGS["odd"]
    T, V, L, NH, C, Vp = 20, 101, 3, 4, 48, 128
    model = GPT2(config)
    model.load_state_dict(random_state(config, seed=3))
    path = tmp_path / "model.bin"
    write_llmc_checkpoint(path, model, config)
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[:8].tolist() == [20240326, 3, T, V, L, NH, C, Vp]
    assert not header[8:].any()
    raw = np.fromfile(path, dtype="<f4", offset=1024)
    sizes = [Vp * C, T * C, L * C, L * C, L * 3 * C * C, L * 3 * C]  # wte wpe ln1w ln1b qkvw qkvb ...
    offsets = np.cumsum([0, *sizes])
    qkvw = raw[offsets[4] : offsets[5]].reshape(L, 3 * C, C)  # (L, OC, C): out[o] = sum_i inp[i] w[o, i]
    qkvb = raw[offsets[5] : offsets[6]].reshape(L, 3 * C)
    x = np.random.default_rng(4).standard_normal((5, C)).astype(np.float32)
    with torch.no_grad():
        ours = model.h[1].attn.c_attn(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(x @ qkvw[1].T + qkvb[1], ours, rtol=1e-5, atol=1e-5)
    expected_bytes = 1024 + 4 * (Vp * C + T * C + L * (12 * C * C + 13 * C) + 2 * C)
    assert path.stat().st_size == expected_bytes


def test_gpt2_124m_file_size():
    # llm.c's gpt2_124M.bin: 124,475,904 parameters (vocab padded to 50304), 497,904,640 bytes
    shapes = weights.llmc_tensor_shapes(GPT2Config.preset("gpt2"))
    n = sum(int(np.prod(s)) for _, s in shapes)
    assert n == 124_475_904
    assert 1024 + 4 * n == 497_904_640


@pytest.mark.parametrize("padded", [False, True], ids=["V", "Vp"])
def test_llmc_checkpoint_loads_into_gpt2(padded, tmp_path):
    config = CONFIGS["odd"]
    model = GPT2(config)
    model.load_state_dict(random_state(config, seed=5))
    path = tmp_path / "model.bin"
    write_llmc_checkpoint(path, model, config)
    loaded = load_gpt2(path, padded_vocab=padded)
    idx = batch(config, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx)[..., : config.vocab_size], model(idx), rtol=0, atol=0)


def test_tiny_checkpoint_is_gpt2_init_with_its_seed(tmp_path):
    path = tmp_path / "tiny.bin"
    config = write_tiny_checkpoint(path, "tiny", seed=7)
    assert config == CONFIGS["tiny"]
    loaded = load_gpt2(path)
    for k, v in GPT2(config, seed=7).state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def hf_model(config):
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel._from_config(hf_config, attn_implementation="eager").eval()
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def with_attn_buffers(state, config, prefix):
    """state as older HF checkpoints store it: prefixed keys, causal-mask buffers and the tied lm_head."""
    out = {prefix + k: v for k, v in state.items()}
    T = config.block_size
    for i in range(config.n_layer):
        out[f"{prefix}h.{i}.attn.bias"] = torch.tril(torch.ones(T, T)).view(1, 1, T, T)
        out[f"{prefix}h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    out["lm_head.weight"] = state["wte.weight"]
    return out


def test_huggingface_state_dict_with_prefix_loads_into_gpt2():
    config = CONFIGS["odd"]
    theirs = hf_model(config)
    state = theirs.state_dict()
    assert any(k.startswith("transformer.") for k in state) and "lm_head.weight" in state
    bare = {k.removeprefix("transformer."): v for k, v in state.items() if k != "lm_head.weight"}
    state = with_attn_buffers(bare, config, "transformer.")
    ours = gpt2_from_state_dict(state, config)
    idx = batch(config, seed=9)
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), theirs(input_ids=idx).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prefix", ["", "transformer."], ids=["bare", "prefixed"])
def test_safetensors_file_loads(prefix, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    config = CONFIGS["odd"]
    state = random_state(config, seed=10)
    path = tmp_path / "model.safetensors"
    stored = {k: v.clone().contiguous() for k, v in with_attn_buffers(state, config, prefix).items()}
    safetensors_torch.save_file(stored, str(path))
    model = load_gpt2(path, n_head=config.n_head)
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k
    params = load_params_numpy(path, n_head=config.n_head)
    assert params.keys() == state.keys()
    np.testing.assert_array_equal(params["h.2.mlp.c_proj.weight"], state["h.2.mlp.c_proj.weight"].numpy())


def test_load_params_numpy_from_llmc_file_has_hf_shapes(tmp_path):
    config = CONFIGS["odd"]
    state = random_state(config, seed=11)
    path = tmp_path / "model.bin"
    write_llmc_checkpoint(path, state, config)
    params = load_params_numpy(path)
    C = config.n_embd
    assert params["wte.weight"].shape == (101, C)  # padding rows cut: HF layout
    assert params["h.0.attn.c_attn.weight"].shape == (C, 3 * C)
    assert params["h.1.mlp.c_proj.weight"].shape == (4 * C, C)
    assert all(v.dtype == np.float32 for v in params.values())
    for k, v in state.items():
        np.testing.assert_array_equal(params[k], v.numpy())


def test_state_dict_without_n_head_is_refused():
    with pytest.raises(ValueError, match="n_head"):
        load_gpt2(random_state(CONFIGS["tiny"], seed=12))


def test_state_dict_with_wrong_shape_is_named():
    config = CONFIGS["tiny"]
    state = random_state(config, seed=13)
    state["h.1.mlp.c_fc.weight"] = state["h.1.mlp.c_fc.weight"].T  # nn.Linear layout by mistake
    with pytest.raises(ValueError, match=r"h\.1\.mlp\.c_fc\.weight has shape \(128, 32\), expected \(32, 128\)"):
        gpt2_from_state_dict(state, config)
    del state["ln_f.bias"]
    with pytest.raises(ValueError, match="ln_f.bias"):
        gpt2_from_state_dict(state, config)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.bin"
    write_tiny_checkpoint(path, "tiny", seed=14)
    return path


def test_truncated_checkpoint_is_named(checkpoint):
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:-4])
    with pytest.raises(ValueError, match=f"{checkpoint}.*truncated"):
        read_llmc_checkpoint(checkpoint)
    checkpoint.write_bytes(data[:500])
    with pytest.raises(ValueError, match=f"{checkpoint}.*truncated.*header"):
        read_llmc_checkpoint(checkpoint)
    checkpoint.write_bytes(data + b"\0" * 8)
    with pytest.raises(ValueError, match=f"{checkpoint}.*8 bytes too long"):
        read_llmc_checkpoint(checkpoint)


@pytest.mark.parametrize(
    "magic, what",
    [(20240520, "token shard"), (12345, "not an llm.c file"), (0x04034B50, "torch.load")],
    ids=["shard", "junk", "torch-zip"],
)
def test_wrong_magic_is_named(checkpoint, magic, what):
    data = bytearray(checkpoint.read_bytes())
    data[:4] = np.int32(magic).tobytes()
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{checkpoint}.*wrong magic number {magic}.*{what}"):
        read_llmc_checkpoint(checkpoint)


def test_unknown_version_and_bad_sizes_are_named(checkpoint):
    data = bytearray(checkpoint.read_bytes())
    data[4:8] = np.int32(4).tobytes()
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{checkpoint}.*version 4"):
        read_llmc_checkpoint(checkpoint)
    data[4:8] = np.int32(3).tobytes()
    data[20:24] = np.int32(5).tobytes()  # NH = 5 does not divide C = 32
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{checkpoint}.*not divisible"):
        read_llmc_checkpoint(checkpoint)


def test_from_pretrained_offline_says_how_to_go_on(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError) as info:
        weights.from_pretrained("gpt2", cache_dir=tmp_path)
    message = str(info.value)
    assert "openai-community/gpt2" in message and "no network" in message
    assert str(weights.pretrained_path("gpt2", tmp_path)) in message and "write_tiny_checkpoint" in message
    assert not list(tmp_path.rglob("*.part"))
    with pytest.raises(ValueError, match="gpt2-medium"):
        weights.from_pretrained("gpt5", cache_dir=tmp_path)


def test_download_writes_the_file(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    dest = tmp_path / "cache" / "copy.bin"
    weights.download(source.as_uri(), dest)  # a file:// URL runs the same urllib code offline
    assert dest.read_bytes() == source.read_bytes()
    assert not dest.with_name("copy.bin.part").exists()
