"""The inference engine: cached generation against full recomputation and the reference GPT-2, sampling, loading."""
import json

import numpy as np
import pytest
import torch

from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.inference import Engine, SamplingParams, load_engine, read_model
from llmc_core.inference.sampling import Sampler
from llmc_core.train.checkpoint import save_checkpoint
from llmc_core.weights import write_llmc_checkpoint

CONFIG = GPT2Config(block_size=48, vocab_size=97, n_layer=2, n_head=4, n_embd=32)


def random_model(config=CONFIG, seed=0):
    """A GPT2 whose every value is random (biases, layernorms too), so logits differ and greedy text varies.

    wte is kept small: with the tied head a large wte makes each token predict itself forever.
    """
    model = GPT2(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.1 if name == "wte.weight" else 1.0))
    return model


@pytest.fixture(scope="module")
def model():
    return random_model()


def prompts(B, T0, seed, V=CONFIG.vocab_size):
    return torch.randint(0, V, (B, T0), generator=torch.Generator().manual_seed(seed)).tolist()


@pytest.mark.parametrize("B", [1, 3])
def test_cached_logits_equal_full_recomputation_and_reference(model, B):
    engine = Engine.from_model(model, batch_size=B)
    seq = torch.tensor(prompts(B, 5, seed=1))
    engine.prefill(seq)
    future = torch.tensor(prompts(B, 30, seed=2))  # the tokens fed back, one per step
    for step in range(30):
        with torch.no_grad():
            reference = model(seq)[:, -1]  # llmc_core.gpt2, no cache
        recomputed = engine.forward_full(seq)[:, -1]  # the engine's own path, no cache
        torch.testing.assert_close(engine.logits, reference, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(engine.logits, recomputed, atol=1e-4, rtol=1e-4)
        engine.next.copy_(future[:, step : step + 1])
        engine.decode_step(seq.shape[1])
        seq = torch.cat([seq, future[:, step : step + 1]], dim=1)


def test_greedy_generation_equals_argmax_of_the_reference(model):
    out = Engine.from_model(model, batch_size=2).generate(prompts(2, 4, seed=3), 25, SamplingParams(temperature=0))
    idx = torch.tensor(prompts(2, 4, seed=3))
    with torch.no_grad():
        for _ in range(25):  # oracle: the reference model on the whole sequence, argmax of the last position
            idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out == idx.tolist()
    assert len(set(out[0][4:])) > 3  # the model is not degenerate: the test could tell tokens apart


@pytest.mark.parametrize("params", [dict(temperature=1.0), dict(temperature=0.8, top_k=10),
                                    dict(temperature=1.2, top_p=0.9), dict(temperature=1.0, top_k=20, top_p=0.5)],
                         ids=["plain", "top_k", "top_p", "both"])
def test_sampling_is_reproducible_bit_for_bit(model, params):
    def run(seed, B=2):
        engine = Engine.from_model(model, batch_size=B)
        return engine.generate(prompts(B, 3, seed=4), 30, SamplingParams(seed=seed, **params))
    a = run(7)
    assert a == run(7)
    assert a != run(8)


def expected_probs(logits, temperature, top_k, top_p):
    """Independent numpy reference of the top-k / top-p distribution (sorting, not masking in place)."""
    z = logits.astype(np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    keep = np.zeros(len(z), bool)
    keep[order[: top_k or len(z)]] = True
    p = np.exp(z - z.max()) * keep
    p /= p.sum()
    mass_before = np.cumsum(p[order]) - p[order]
    keep[order[mass_before >= top_p]] = False
    p = p * keep
    return p / p.sum()


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (1.5, 0, 0.6), (1.0, 6, 0.8)])
def test_sampler_draws_follow_the_cut_distribution(temperature, top_k, top_p):
    V, n = 12, 20000
    logits = torch.randn(V, generator=torch.Generator().manual_seed(5)) * 2
    sampler = Sampler(SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=1), n, V, "cpu")
    out = torch.empty(n, 1, dtype=torch.long)
    sampler.choose(logits.expand(n, V).clone(), out)  # n independent rows, one draw each
    freq = np.bincount(out.view(-1).numpy(), minlength=V) / n
    expected = expected_probs(logits.numpy(), temperature, top_k, top_p)
    assert np.all(freq[expected == 0] == 0), "a token cut by top-k/top-p was drawn"
    np.testing.assert_allclose(freq, expected, atol=0.015)


def test_stream_yields_each_token_before_computing_the_next(model, monkeypatch):
    engine = Engine.from_model(model)
    calls = []
    monkeypatch.setattr(engine, "decode_step", lambda pos: calls.append(pos) or Engine.decode_step(engine, pos))
    steps = engine.stream([[1, 2]], 5, SamplingParams(seed=0))
    assert next(steps) is not None and calls == []  # the first token comes from the prefill alone
    assert len(list(steps)) == 4 and calls == [2, 3, 4, 5]


def test_stop_tokens_end_only_their_row(model):
    sampling = SamplingParams(seed=3)
    free = Engine.from_model(model, batch_size=2).generate(prompts(2, 3, seed=6), 20, sampling)
    stop = next(t for t in free[0][5:] if t not in free[1][3:])  # a token only row 0 generates, not first
    out = Engine.from_model(model, batch_size=2).generate(prompts(2, 3, seed=6), 20, sampling, stop_tokens=[stop])
    first = free[0].index(stop, 3)
    assert first < len(free[0]) - 1
    assert out[0] == free[0][: first + 1]  # row 0 ends with its stop token
    assert out[1] == free[1]  # row 1 runs to the end


BAD_REQUESTS = {
    "id too large": (dict(prompts=[[1, 97]]), "token ids must be in \\[0, 97\\)"),
    "negative id": (dict(prompts=[[-1]]), "token ids must be in"),
    "float id": (dict(prompts=[[1.0]]), "token ids must be ints"),
    "empty prompt": (dict(prompts=[[]]), "at least one token"),
    "wrong batch": (dict(prompts=[[1], [2]]), "expected 1 prompts"),
    "too long": (dict(prompts=[[1] * 40], max_new_tokens=9), "needs 49 positions"),
    "zero new": (dict(max_new_tokens=0), "max_new_tokens must be an int"),
    "stop token": (dict(stop_tokens=[97]), "stop tokens must be token ids"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_requests_raise_clear_value_errors(model, name):
    changes, message = BAD_REQUESTS[name]
    request = dict(prompts=[[1, 2]], max_new_tokens=3, stop_tokens=()) | changes
    with pytest.raises(ValueError, match=message):
        Engine.from_model(model).stream(request["prompts"], request["max_new_tokens"], None, request["stop_tokens"])


@pytest.mark.parametrize("params,message", [
    (dict(temperature=-1.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(temperature=1e9), "temperature"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k"), (dict(seed=-3), "seed"), (dict(seed="1"), "seed"),
], ids=lambda x: str(x) if isinstance(x, dict) else "")
def test_bad_sampling_params_raise(params, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**params)


def test_engine_sizes_are_checked(model):
    with pytest.raises(ValueError, match="max_len"):
        Engine.from_model(model, max_len=CONFIG.block_size + 1)
    with pytest.raises(ValueError, match="batch_size"):
        Engine.from_model(model, batch_size=0)
    with pytest.raises(ValueError, match="top_k=200 is larger than the vocabulary"):
        Engine.from_model(model).stream([[1]], 2, SamplingParams(top_k=200))


@pytest.mark.parametrize("damage,message", [
    (lambda s: s["h.1.mlp.c_fc.weight"].view(-1).__setitem__(7, float("nan")),
     "h.1.mlp.c_fc.weight holds 1 NaN or Inf"),
    (lambda s: s["wpe.weight"].view(-1).__setitem__(0, float("inf")), "wpe.weight holds 1 NaN or Inf"),
    (lambda s: s.__setitem__("ln_f.bias", torch.zeros(3)), "ln_f.bias has shape"),
    (lambda s: s.__setitem__("ln_f.bias", torch.zeros(32, dtype=torch.int32)), "must be floating point"),
    (lambda s: s.pop("h.0.ln_1.weight"), "missing \\['h.0.ln_1.weight'\\]"),
    (lambda s: s.__setitem__("h.0.ln_1.weight", "text"), "not named tensors"),
], ids=["nan", "inf", "shape", "dtype", "missing", "not a tensor"])
def test_bad_weights_are_rejected(model, damage, message):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    damage(state)
    with pytest.raises(ValueError, match=message):
        Engine(CONFIG, state)


def greedy(engine, n=10):
    return engine.generate([[1, 2, 3]], n, SamplingParams(temperature=0))


def test_loads_a_training_checkpoint(model, tmp_path):
    shape = {f: getattr(CONFIG, f) for f in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd")}
    save_checkpoint(tmp_path / "checkpoint.pt", {"model": model.state_dict(), "step": 3, "config": {},
                                                 "model_config": shape})
    engine, tokenizer = load_engine(tmp_path)  # the run folder
    assert tokenizer is None  # no tokenizer recorded: the caller uses GPT-2's
    assert greedy(engine) == greedy(Engine.from_model(model))


def test_loads_llmc_and_hugging_face_files(model, tmp_path):
    write_llmc_checkpoint(tmp_path / "model.bin", model, CONFIG)
    import safetensors.torch
    hf = {f"transformer.{k}": v.contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(hf, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"n_head": CONFIG.n_head}))
    expected = greedy(Engine.from_model(model))
    for name in ("model.bin", "model.safetensors"):
        config = read_model(tmp_path / name).config
        assert config == CONFIG
        assert greedy(load_engine(tmp_path / name)[0]) == expected, name


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no model at"):
        read_model(tmp_path / "nothing.bin")


def test_llmc_generate_streams_the_engine_text(tmp_path, capsys):
    from llmc_core.cli import main
    from llmc_core.encodings import gpt2_encoding
    from llmc_core.weights import write_tiny_checkpoint
    config = write_tiny_checkpoint(tmp_path / "tiny.bin", "tiny-gpt2vocab", seed=3)
    assert main(["generate", str(tmp_path / "tiny.bin"), "--prompt", "To be", "--tokens", "8", "--greedy"]) == 0
    enc = gpt2_encoding()
    engine = load_engine(tmp_path / "tiny.bin")[0]
    ids = engine.generate([[50256] + enc.encode_ordinary("To be")], 8, SamplingParams(temperature=0))[0]
    assert capsys.readouterr().out == f"--- sample 1 ---\n{enc.decode(ids[1:])}\n"
    assert main(["generate", str(tmp_path / "tiny.bin"), "--tokens", str(config.block_size)]) == 2
    assert "needs 65 positions" in capsys.readouterr().err


def test_sample_text_ends_at_the_context():
    from llmc_core.encodings import gpt2_encoding
    from llmc_core.train.sample import generate, sample_text
    tiny = GPT2(GPT2Config.preset("tiny-gpt2vocab"), seed=0)  # 64 positions
    text = sample_text(tiny, "", max_new_tokens=500, seed=1)  # the trainer asks for a fixed count
    assert text == gpt2_encoding().decode(generate(tiny, [50256], 63, seed=1)[1:])  # all 63 positions left
    assert len(generate(tiny, [50256], 64, seed=1)) == 65  # `generate` itself slides a window past the context
    with pytest.raises(ValueError, match="shorten the prompt"):
        sample_text(tiny, "word " * 80)
