"""llm.c's tokenizer file and debug state: layout, round trips, gradients against finite differences."""
import struct

import numpy as np
import pytest
import torch

from llmc_core.datasets import tiny_shakespeare_text
from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.tokenizer import load_tokenizer, train_tokenizer
from llmc_core.train.export import (
    first_batch,
    read_debug_state,
    read_llmc_tokenizer,
    write_debug_state,
    write_llmc_tokenizer,
)
from llmc_core.weights import llmc_tensor_shapes, llmc_tensors_to_state, state_to_llmc_tensors


@pytest.fixture(scope="module")
def small_tokenizer():
    return train_tokenizer(tiny_shakespeare_text()[:30_000], 320)


def parse_with_struct(raw):
    """llm.c's tokenizer.h reading, written out independently: header ints, then (uint8 length, bytes) pairs."""
    header = struct.unpack("<256i", raw[:1024])
    tokens, at = [], 1024
    for _ in range(header[2]):
        (n,) = struct.unpack_from("<B", raw, at)
        tokens.append(raw[at + 1: at + 1 + n])
        at += 1 + n
    assert at == len(raw)
    return header, tokens


@pytest.mark.parametrize("which", ["small", "gpt2"])
def test_tokenizer_file_round_trip(tmp_path, small_tokenizer, which):
    enc = small_tokenizer if which == "small" else load_tokenizer("gpt2")
    path = tmp_path / "tok.bin"
    write_llmc_tokenizer(enc, path)
    header, tokens = parse_with_struct(path.read_bytes())
    assert header[:4] == (20240328, 2, enc.n_vocab, enc.eot_token) and set(header[4:]) == {0}
    assert tokens == [enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)]
    assert tokens[enc.eot_token] == b"<|endoftext|>"
    assert read_llmc_tokenizer(path) == (tokens, enc.eot_token)


def test_version_1_tokenizer_file_implies_gpt2_eot(tmp_path):
    enc = load_tokenizer("gpt2")
    write_llmc_tokenizer(enc, tmp_path / "v2.bin")
    raw = bytearray((tmp_path / "v2.bin").read_bytes())
    raw[4:8], raw[12:16] = struct.pack("<i", 1), struct.pack("<i", 0)  # llm.c's older layout: no EOT slot
    (tmp_path / "v1.bin").write_bytes(bytes(raw))
    tokens, eot = read_llmc_tokenizer(tmp_path / "v1.bin")
    assert eot == 50256 and len(tokens) == 50257


CONFIG = GPT2Config(block_size=16, vocab_size=320, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = GPT2(CONFIG, padded_vocab=True, seed=5)
    with torch.no_grad():  # GPT-2 init has zero biases and unit layernorms: make every gradient non-trivial
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
        m.wte.weight[CONFIG.vocab_size:].zero_()
    return m


def test_debug_state_round_trip_matches_autograd(tmp_path, model, small_tokenizer):
    x, y = first_batch(small_tokenizer, 2, 8)
    assert x.shape == (2, 8) and (x[:, 1:] == y[:, :-1]).all() and x[0, 0] == small_tokenizer.eot_token
    written = write_debug_state(tmp_path / "debug.bin", model, x, y)
    back = read_debug_state(tmp_path / "debug.bin", CONFIG)
    raw = (tmp_path / "debug.bin").read_bytes()
    assert struct.unpack("<4i", raw[:16]) == (20240327, 2, 2, 8)
    np.testing.assert_array_equal(back["x"], x)
    np.testing.assert_array_equal(back["y"], y)
    # an independent forward/backward (torch autograd, no export code) on the same weights
    model.zero_grad(set_to_none=True)
    logits, loss = model(torch.as_tensor(x, dtype=torch.long), torch.as_tensor(y, dtype=torch.long))
    loss.backward()
    np.testing.assert_allclose(back["logits"], logits[..., :320].detach().numpy(), rtol=0, atol=1e-6)
    assert back["loss"] == pytest.approx(loss.item(), abs=1e-6) and back["loss"] == pytest.approx(written["loss"])
    as_hf = llmc_tensors_to_state(back["grads"], CONFIG)  # the file's layout mapped back to parameter names
    for name, p in model.named_parameters():
        np.testing.assert_allclose(as_hf[name].numpy()[: p.shape[0]], p.grad.numpy(), rtol=0, atol=1e-6, err_msg=name)
    model.zero_grad(set_to_none=True)
    assert [g.shape for g in back["grads"].values()] == [s for _, s in llmc_tensor_shapes(CONFIG)]


def test_debug_state_gradients_match_finite_differences(tmp_path, model, small_tokenizer):
    """Each of the 16 gradient arrays, at 2 entries in llm.c's layout, against central differences in float64."""
    x, y = first_batch(small_tokenizer, 2, 8)
    write_debug_state(tmp_path / "debug.bin", model, x, y)
    grads = read_debug_state(tmp_path / "debug.bin", CONFIG)["grads"]
    names = [name for name, _ in llmc_tensor_shapes(CONFIG)]
    base = state_to_llmc_tensors(model.state_dict(), CONFIG)
    probe = GPT2(CONFIG, padded_vocab=True).double()
    xt, yt = torch.as_tensor(x, dtype=torch.long), torch.as_tensor(y, dtype=torch.long)

    def loss_at(tensors):
        state = llmc_tensors_to_state(dict(zip(names, tensors)), CONFIG)  # float32 values, exact in float64
        probe.load_state_dict({k: v.double() for k, v in state.items()})
        return probe(xt, yt)[1].item()

    rng = np.random.default_rng(0)
    for j, (name, shape) in enumerate(llmc_tensor_shapes(CONFIG)):
        rows = CONFIG.vocab_size * CONFIG.n_embd if name == "wte" else int(np.prod(shape))  # not the padding
        for k in rng.choice(rows, 2, replace=False):
            plus, minus = [t.copy() for t in base], [t.copy() for t in base]
            plus[j].flat[k] += np.float32(1e-3)
            minus[j].flat[k] -= np.float32(1e-3)
            step = float(plus[j].flat[k]) - float(minus[j].flat[k])  # the float32 step actually taken
            numeric = (loss_at(plus) - loss_at(minus)) / step
            assert grads[name].flat[k] == pytest.approx(numeric, rel=1e-3, abs=1e-6), (name, k)


def test_debug_state_reader_names_the_file(tmp_path, model, small_tokenizer):
    x, y = first_batch(small_tokenizer, 2, 8)
    path = tmp_path / "debug.bin"
    write_debug_state(path, model, x, y)
    data = path.read_bytes()
    path.write_bytes(data[:-4])
    with pytest.raises(ValueError, match=r"debug\.bin: B=2, T=8 in the header.*should be"):
        read_debug_state(path, CONFIG)
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"debug\.bin: .*should be"):
        read_debug_state(path, GPT2Config(block_size=16, vocab_size=300, n_layer=2, n_head=2, n_embd=16))
    path.write_bytes(struct.pack("<i", 20240520) + data[4:])
    with pytest.raises(ValueError, match=r"debug\.bin: wrong magic number 20240520.*token shard"):
        read_debug_state(path, CONFIG)


def test_cli_export_writes_llmc_files_for_the_runs_tokenizer(tmp_path, small_tokenizer, capsys):
    from llmc_core.tokenizer import save_tokenizer
    from llmc_core.train.cli import main
    from llmc_core.train.config import TrainConfig
    from llmc_core.train.shards import write_shard
    from llmc_core.train.trainer import train
    from llmc_core.weights import read_llmc_checkpoint
    tokens = np.asarray(small_tokenizer.encode_ordinary(tiny_shakespeare_text()[:8000]))
    write_shard(tmp_path / "t_train.bin", tokens, small_tokenizer)
    write_shard(tmp_path / "t_val.bin", tokens[:600], small_tokenizer)
    save_tokenizer(small_tokenizer, tmp_path / "t.tokenizer")
    config = TrainConfig(tokenizer=str(tmp_path / "t.tokenizer"), n_layer=2, n_head=2, n_embd=16, seq_len=16,
                         vocab_size=320, batch_size=2, total_batch_tokens=32, max_steps=1, warmup_steps=1, val_every=1,
                         val_batches=1, sample_every=0,
                         train_data=str(tmp_path / "t_train.bin"), val_data=str(tmp_path / "t_val.bin"))
    train(config, tmp_path / "run", progress=False)  # the checkpoint stores the run's tokenizer
    out = {name: tmp_path / f"{name}.bin" for name in ("model", "tok", "debug")}
    assert main(["export", str(tmp_path / "run"), str(out["model"]), "--tokenizer-bin", str(out["tok"]),
                 "--debug-state", str(out["debug"])]) == 0
    assert "EOT 319" in capsys.readouterr().out
    assert read_llmc_tokenizer(out["tok"]) == ([small_tokenizer.decode_single_token_bytes(i) for i in range(320)], 319)
    model_config, _ = read_llmc_checkpoint(out["model"])  # as test_gpt2.c does: sizes from the model file
    debug = read_debug_state(out["debug"], model_config)
    assert debug["x"].shape == (4, 16) and np.isfinite(debug["loss"])
