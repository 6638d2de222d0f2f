"""The reference GPT-2 (llmc_core.gpt2) against Hugging Face's GPT2LMHeadModel, an independent implementation."""

import math

import pytest
import torch

from llmc_core.gpt2 import GPT2, PRESETS, GPT2Config

# (block_size, vocab_size, n_layer, n_head, n_embd): the preset `tiny`, and one with odd sizes
CONFIGS = {
    "tiny": GPT2Config.preset("tiny"),
    "odd": GPT2Config(block_size=20, vocab_size=101, n_layer=3, n_head=4, n_embd=48),
}
# float64 agrees to rounding; float32 sums in a different order in HF's kernels
TOLERANCES = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-5)}


def hf_model(config: GPT2Config):
    """Hugging Face's GPT-2 with our sizes, no dropout, tanh GELU, eager attention."""
    transformers = pytest.importorskip("transformers")  # the tests that need no oracle still run without it
    hf_config = transformers.GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.block_size,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        activation_function="gelu_new",  # the tanh approximation
        layer_norm_epsilon=1e-5,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel._from_config(hf_config, attn_implementation="eager").eval()


def random_batch(config, seed, B=3, T=None):
    g = torch.Generator().manual_seed(seed)
    T = T or config.block_size
    idx = torch.randint(0, config.vocab_size, (B, T), generator=g)
    targets = torch.randint(0, config.vocab_size, (B, T), generator=g)
    return idx, targets


def randomized(model, seed, scale=0.5):
    """model with every parameter (biases, layernorms included) drawn from N(0, scale^2).

    GPT-2's own init (std 0.02, zero biases, unit layernorms) makes every layer nearly linear,
    so a wrong GELU or a missing bias would change the logits by less than float32 rounding.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)
    return model


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_loss_and_grads_match_huggingface(name, dtype):
    config = CONFIGS[name]
    ours = randomized(GPT2(config).double(), seed=1).to(dtype)
    theirs = hf_model(config).to(dtype)
    # same weights: our state dict is HF's transformer.* without the prefix
    missing, unexpected = theirs.transformer.load_state_dict(ours.state_dict(), strict=False)
    assert unexpected == [] and all(".attn.bias" in k or "masked_bias" in k for k in missing), (missing, unexpected)
    idx, targets = random_batch(config, seed=2)

    logits, loss = ours(idx, targets)
    out = theirs(input_ids=idx)
    # HF's `labels` shift by one inside the model; ours are already the next tokens, so compute its loss here
    ref_logits = out.logits
    ref_loss = torch.nn.functional.cross_entropy(ref_logits.reshape(-1, config.vocab_size), targets.reshape(-1))
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(logits, ref_logits, **tol, msg=lambda m: f"logits {name} {dtype}: {m}")
    torch.testing.assert_close(loss, ref_loss, **tol)

    loss.backward()
    ref_loss.backward()
    ref_grads = {k.removeprefix("transformer."): p.grad for k, p in theirs.named_parameters()}
    ref_grads["wte.weight"] = theirs.transformer.wte.weight.grad  # tied with lm_head: one grad holds both uses
    for k, p in ours.named_parameters():
        # gradients sum over B*T positions: a looser atol
        torch.testing.assert_close(p.grad, ref_grads[k], rtol=tol["rtol"], atol=10 * tol["atol"],
                                   msg=lambda m: f"{k}: {m}")


def test_state_dict_names_and_shapes_are_huggingface():
    config = CONFIGS["odd"]
    ours = {k: tuple(v.shape) for k, v in GPT2(config).state_dict().items()}
    theirs = {
        k.removeprefix("transformer."): tuple(v.shape)
        for k, v in hf_model(config).state_dict().items()
        if k != "lm_head.weight" and not k.endswith((".attn.bias", ".attn.masked_bias"))
    }
    assert ours == theirs
    C = config.n_embd
    assert ours["h.0.attn.c_attn.weight"] == (C, 3 * C)  # Conv1D layout: (in, out)
    assert ours["h.0.mlp.c_proj.weight"] == (4 * C, C)
    assert "lm_head.weight" not in ours  # tied to wte


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_sdpa_attention_matches_manual(dtype):
    config = CONFIGS["odd"]
    manual = randomized(GPT2(config, attention="manual").double(), seed=3).to(dtype)
    sdpa = randomized(GPT2(config, attention="sdpa").double(), seed=3).to(dtype)
    idx, targets = random_batch(config, seed=4)
    logits_m, loss_m = manual(idx, targets)
    logits_s, loss_s = sdpa(idx, targets)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(logits_s, logits_m, **tol)
    loss_m.backward()
    loss_s.backward()
    for (k, pm), ps in zip(manual.named_parameters(), sdpa.parameters()):
        torch.testing.assert_close(ps.grad, pm.grad, rtol=tol["rtol"], atol=10 * tol["atol"], msg=lambda m: f"{k}: {m}")


def test_padded_vocab_gives_the_unpadded_loss_and_logits():
    config = GPT2Config(block_size=16, vocab_size=200, n_layer=2, n_head=2, n_embd=16)
    padded = GPT2(config, padded_vocab=True, seed=5).double()
    plain = GPT2(config, seed=5).double()
    assert padded.wte.weight.shape == (256, 16)
    assert padded.wte.weight[200:].abs().max().item() == 0.0  # padding rows start at zero
    state = plain.state_dict()
    state["wte.weight"] = torch.cat([state["wte.weight"], torch.randn(56, 16, dtype=torch.float64)])  # any padding
    padded.load_state_dict(state)
    idx, targets = random_batch(config, seed=6)
    logits_p, loss_p = padded(idx, targets)
    logits_u, loss_u = plain(idx, targets)
    assert logits_p.shape == (3, 16, 256)
    torch.testing.assert_close(logits_p[..., :200], logits_u, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss_p, loss_u, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "vocab, padded", [(50257, 50304), (64, 128), (128, 128), (129, 256)], ids=["gpt2", "64", "128", "129"]
)
def test_padded_vocab_size(vocab, padded):
    assert GPT2Config(vocab_size=vocab).padded_vocab_size == padded


def test_gpt2_124m_parameter_count():
    # 124,439,808 is the count OpenAI's and Hugging Face's 124M GPT-2 report (tied head counted once);
    # HF's model on the meta device (no memory); ours is counted by the formula that
    # test_small_model_count_matches_formula checks against a built module
    config = GPT2Config.preset("gpt2")
    with torch.device("meta"):
        theirs = hf_model(config)
    n_theirs = sum(p.numel() for p in theirs.transformer.parameters())
    C, V, T, L = config.n_embd, config.vocab_size, config.block_size, config.n_layer
    n_ours = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C  # the count our module builds, layer by layer
    assert n_theirs == n_ours == 124_439_808


def test_init_statistics():
    config = GPT2Config(block_size=32, vocab_size=512, n_layer=8, n_head=4, n_embd=256)
    a = GPT2(config, seed=7)
    params = dict(a.named_parameters())
    # 65,536 or more samples per tensor: the sample std is within ~1% of the true std
    assert params["h.0.attn.c_attn.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    assert params["h.3.mlp.c_fc.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    assert params["h.5.attn.c_proj.weight"].std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.02)
    assert params["h.5.mlp.c_proj.weight"].std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.02)
    assert params["h.2.ln_1.weight"].eq(1).all() and params["h.2.attn.c_attn.bias"].eq(0).all()


def test_same_seed_same_init():
    config = CONFIGS["odd"]
    a, b, c = GPT2(config, seed=7), GPT2(config, seed=7), GPT2(config, seed=8)
    for k, p in a.state_dict().items():
        assert torch.equal(p, b.state_dict()[k]), k
    assert not torch.equal(a.wte.weight, c.wte.weight)


def test_small_model_count_matches_formula():
    config = CONFIGS["odd"]
    C, V, T, L = config.n_embd, config.vocab_size, config.block_size, config.n_layer
    assert GPT2(config).num_parameters() == V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_embd=10, n_head=3), "not divisible"),
        (dict(n_layer=0), "n_layer"),
        (dict(vocab_size=-1), "vocab_size"),
        (dict(block_size=2.5), "block_size"),
    ],
    ids=["heads", "layers", "vocab", "float"],
)
def test_config_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPT2Config(**kwargs)


def test_preset_names():
    assert GPT2Config.preset("gpt2-xl") == GPT2Config(n_layer=48, n_head=25, n_embd=1600)
    with pytest.raises(ValueError, match="gpt2-medium"):  # the error lists the valid names
        GPT2Config.preset("gpt3")
    assert {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny"} <= set(PRESETS)


def test_too_long_input_and_bad_attention_raise():
    model = GPT2(CONFIGS["tiny"])
    with pytest.raises(ValueError, match="block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="attention"):
        GPT2(CONFIGS["tiny"], attention="flash")


@pytest.mark.parametrize("attention", ["manual", "sdpa"])
def test_dropout_acts_only_while_training(attention):
    from llmc_core.modern import GPT, Recipe
    idx = torch.randint(0, 101, (2, 20), generator=torch.Generator().manual_seed(0))
    for make in (lambda p: GPT2(CONFIGS["odd"], attention=attention, seed=1, dropout=p),
                 lambda p: GPT(CONFIGS["odd"], Recipe(rope=True, norm="rms"), attention=attention, seed=1, dropout=p)):
        plain, dropped = make(0.0), make(0.3)
        with torch.no_grad():
            assert torch.equal(dropped.eval()(idx), plain.eval()(idx))  # evaluation and sampling: no dropout
            torch.manual_seed(5)
            first = dropped.train()(idx)
            torch.manual_seed(5)
            assert torch.equal(dropped(idx), first)  # the masks come from torch's generator
            assert not torch.allclose(dropped(idx), first)  # and differ from call to call
            assert torch.equal(plain.train()(idx), plain.eval()(idx))  # p = 0 changes nothing


def test_dropout_must_be_a_fraction():
    from llmc_core.train.config import TrainConfig
    with pytest.raises(ValueError, match="dropout must be in"):
        GPT2(CONFIGS["tiny"], dropout=1.0)
    with pytest.raises(ValueError, match="--dropout must be in"):
        TrainConfig(dropout=-0.1)
