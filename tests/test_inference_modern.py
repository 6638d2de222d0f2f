"""The engine on modern-recipe models: each option, and the full preset, against the trainer's model.

The reference is llmc_core.modern.GPT, the model `llmc train --recipe modern` trains, recomputing
the whole sequence; the engine must reproduce its logits token by token from its KV cache.
"""
import dataclasses
import inspect

import pytest
import torch

from llmc_core import modern
from llmc_core.cli import main
from llmc_core.gpt2 import GPT2Config
from llmc_core.inference import Engine, SamplingParams, load_engine, read_model
from llmc_core.inference.engine import RMS_EPS
from llmc_core.inference.load import param_shapes
from llmc_core.modern import GPT, Pieces, Recipe
from llmc_core.train import sample
from llmc_core.train.checkpoint import save_checkpoint
from llmc_core.train.config import TrainConfig
from llmc_core.train.trainer import build_model

CONFIG = GPT2Config(block_size=40, vocab_size=61, n_layer=2, n_head=2, n_embd=16)
MODERN = Recipe(**{k: v for k, v in modern.RECIPES["modern"].items() if k != "optimizer"})
CAP = 0.5  # below these models' largest logits (about 1), so that the cap bends them
RECIPES = {"rope": Recipe(rope=True), "rms norm": Recipe(norm="rms"), "qk-norm": Recipe(qk_norm=True),
           "relu2": Recipe(mlp="relu2"), "softcap": Recipe(softcap=CAP), "untied head": Recipe(untie_head=True),
           "modern": MODERN}
TOL = dict(atol=1e-4, rtol=1e-4)  # float32: the same sums in another order


def randomize(model, seed):
    """Every value random (gains around 1, biases too), so that every option changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            gain = p.dim() == 1 and (name.endswith("weight") or name.endswith("_norm"))
            p.copy_(1.0 + 0.3 * noise if gain else noise * (0.1 if name == "wte.weight" else 0.5))
    return model


def random_modern(recipe, seed=0, padded_vocab=False):
    return randomize(GPT(CONFIG, recipe, padded_vocab=padded_vocab, seed=seed).eval(), seed)


def random_ids(B, T, seed):
    return torch.randint(0, CONFIG.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(RECIPES))
def test_cached_logits_equal_the_trainer_models_recomputation(name):
    model = random_modern(RECIPES[name], seed=1, padded_vocab=name == "modern")  # padded rows are cut
    engine = Engine.from_model(model, batch_size=2)
    seq, future = random_ids(2, 5, seed=2), random_ids(2, 30, seed=3)  # a prompt, then the tokens fed back
    engine.prefill(seq)
    for step in range(30):
        with torch.no_grad():
            reference = model(seq)[:, -1, : CONFIG.vocab_size]  # llmc_core.modern, the whole sequence again
        torch.testing.assert_close(engine.logits, reference, **TOL)
        torch.testing.assert_close(engine.logits, engine.forward_full(seq)[:, -1], **TOL)
        engine.next.copy_(future[:, step : step + 1])
        engine.decode_step(seq.shape[1])
        seq = torch.cat([seq, future[:, step : step + 1]], dim=1)
    if name == "softcap":  # the cap bends these logits: they come close to it, never past it
        assert 0.8 * CAP < reference.abs().max() < CAP


def test_each_option_changes_the_logits():
    """The test above could fail: with the same weights, every option moves the logits well past its tolerance."""
    plain = random_modern(Recipe(), seed=1)
    ids = random_ids(2, 12, seed=2)
    with torch.no_grad():
        base = plain(ids)
        for name, recipe in RECIPES.items():
            model = GPT(CONFIG, recipe).eval()
            shared = {k: v for k, v in plain.state_dict().items() if k in model.state_dict()}
            model.load_state_dict(shared, strict=False)  # the option's own weights keep their init
            assert (model(ids) - base).abs().max() > 1e-2, name


def test_greedy_is_the_argmax_of_the_model_and_sampling_is_reproducible():
    model = random_modern(MODERN, seed=5)  # a seed whose greedy text does not fall into a short loop
    prompt = random_ids(2, 4, seed=5)
    out = Engine.from_model(model, batch_size=2).generate(prompt.tolist(), 25, SamplingParams(temperature=0))
    idx = prompt
    with torch.no_grad():
        for _ in range(25):  # oracle: the model on the whole sequence, argmax of the last position
            idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert out == idx.tolist()
    assert min(len(set(row[4:])) for row in out) > 3  # not a degenerate model: the test could tell tokens apart

    def run(seed):
        params = SamplingParams(temperature=0.9, top_k=20, top_p=0.9, seed=seed)
        return Engine.from_model(model, batch_size=2).generate(prompt.tolist(), 30, params)
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_rope_tables_are_built_at_load_for_max_len():
    engine = Engine.from_model(random_modern(MODERN), max_len=24)
    angles = modern.rope_angles(24, CONFIG.head_size)
    assert engine.cos.shape == (24, CONFIG.head_size // 2)
    assert torch.equal(engine.cos, angles.cos()) and torch.equal(engine.sin, angles.sin())
    assert Engine.from_model(random_modern(Recipe())).cos is None  # GPT-2 has no rotations


def test_rms_eps_is_the_models():
    assert RMS_EPS == inspect.signature(modern.rms_norm).parameters["eps"].default


@pytest.mark.parametrize("name", list(RECIPES))
def test_parameter_names_and_shapes_are_the_models(name):
    model = GPT(CONFIG, RECIPES[name])
    assert param_shapes(CONFIG, RECIPES[name]) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# What the engine cannot reproduce is refused, by name

@dataclasses.dataclass(frozen=True)
class FutureRecipe(Recipe):
    value_embeds: bool = False  # an option this engine does not implement


@pytest.mark.parametrize("recipe,config,message", [
    (FutureRecipe(value_embeds=True), CONFIG, "cannot run a model with value_embeds=True"),
    (Recipe(softcap=float("inf")), CONFIG, "softcap=inf"),
    (Recipe(rope=True), GPT2Config(block_size=8, vocab_size=10, n_layer=1, n_head=4, n_embd=12),
     "odd head size \\(3\\)"),
    ("modern", CONFIG, "recipe must be a llmc_core.modern.Recipe"),
], ids=["unknown option", "infinite cap", "odd head size", "not a recipe"])
def test_options_the_engine_cannot_run_are_refused(recipe, config, message):
    with pytest.raises(ValueError, match=message):
        Engine(config, {}, recipe=recipe)  # refused before the weights are even looked at


def test_an_unknown_option_left_off_is_fine():
    model = random_modern(Recipe(rope=True))
    state = {k: v.detach() for k, v in model.state_dict().items()}
    engine = Engine(CONFIG, state, recipe=FutureRecipe(rope=True))
    assert engine.generate([[1, 2]], 5, SamplingParams(temperature=0)) == \
        Engine.from_model(model).generate([[1, 2]], 5, SamplingParams(temperature=0))


def test_weights_of_another_recipe_are_refused():
    state = random_modern(MODERN).state_dict()
    with pytest.raises(ValueError, match="missing \\['wpe.weight'.*unexpected \\['lm_head', 'h.0.attn.q_norm'.*recipe"):
        Engine(CONFIG, state)  # GPT-2's recipe


def test_learner_pieces_are_refused_by_the_engine_and_run_by_generate():
    calls = []

    def my_relu2(x):
        calls.append(x.shape)
        return torch.relu(x) ** 2
    ours = random_modern(MODERN, seed=6)
    theirs = GPT(CONFIG, MODERN, pieces=Pieces(relu2=my_relu2)).eval()
    theirs.load_state_dict(ours.state_dict())
    with pytest.raises(ValueError, match="its own relu2"):
        Engine.from_model(theirs)
    assert sample.generate(theirs, [1, 2, 3], 12, temperature=0) == sample.generate(ours, [1, 2, 3], 12, temperature=0)
    assert len(calls) == 12 * CONFIG.n_layer  # the learner's function ran, once per block and token
    unused = GPT(CONFIG, Recipe(rope=True), pieces=Pieces(relu2=my_relu2))  # a piece its recipe never calls
    assert Engine.from_model(unused).recipe == Recipe(rope=True)
    with pytest.raises(ValueError, match="the engine runs llmc_core.gpt2.GPT2 and llmc_core.modern.GPT models"):
        Engine.from_model(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# Modern-recipe checkpoints: `llmc generate` and `llmc sample` run them on the engine

def write_modern_run(folder, extra_config=None):
    config = TrainConfig(n_layer=2, n_head=2, n_embd=16, seq_len=40, vocab_size=61, tokenizer="gpt2",
                         **modern.RECIPES["modern"])
    model = randomize(build_model(config, "cpu").eval(), seed=8)  # padded vocabulary, as the trainer builds it
    save_checkpoint(folder / "checkpoint.pt", {"model": model.state_dict(), "step": 1,
                                               "config": config.to_dict() | (extra_config or {}),
                                               "model_config": dataclasses.asdict(model.config)})
    return model


def test_modern_checkpoint_loads_with_its_recipe(tmp_path, capsys):
    model = write_modern_run(tmp_path)
    loaded = read_model(tmp_path)
    assert loaded.recipe == MODERN and loaded.config == CONFIG and "lm_head" in loaded.state
    greedy = SamplingParams(temperature=0)
    assert load_engine(tmp_path)[0].generate([[1, 2]], 20, greedy) == \
        Engine.from_model(model).generate([[1, 2]], 20, greedy)
    assert main(["generate", str(tmp_path), "--tokens", "8", "--greedy"]) == 0
    from llmc_core.encodings import gpt2_encoding
    ids = Engine.from_model(model).generate([[0]], 8, greedy)[0]  # a toy vocabulary starts at 0
    assert capsys.readouterr().out == f"--- sample 1 ---\n{gpt2_encoding().decode(ids[1:])}\n"


def test_checkpoint_with_settings_this_llmc_does_not_know_is_refused(tmp_path):
    write_modern_run(tmp_path, {"value_embeds": True})
    with pytest.raises(ValueError, match="does not know: \\['value_embeds'\\]"):
        read_model(tmp_path)


def test_llmc_sample_runs_a_modern_checkpoint_on_the_engine(tmp_path, capsys, monkeypatch):
    model = write_modern_run(tmp_path)

    def no_recomputing(*args):
        raise AssertionError("sampled without the engine")
    monkeypatch.setattr(sample, "generate_recomputing", no_recomputing)
    assert main(["sample", str(tmp_path), "--tokens", "6", "--temperature", "0.8", "--seed", "3"]) == 0
    from llmc_core.encodings import gpt2_encoding
    params = SamplingParams(temperature=0.8, top_k=50, seed=3)
    ids = Engine.from_model(model, max_len=7).generate([[0]], 6, params)[0]  # a toy vocabulary starts at 0
    assert capsys.readouterr().out == f"--- sample 1 ---\n{gpt2_encoding().decode(ids[1:])}\n"


def test_trainer_samples_a_modern_model_on_the_engine_then_a_sliding_window(toy_shards, tmp_path, monkeypatch):
    from llmc_core.train.trainer import train
    from test_train_trainer import tiny

    past_context, real = [], sample.generate_recomputing

    def recomputing(model, prompt, n, *args):
        past_context.append((len(prompt), n))
        return real(model, prompt, n, *args)
    monkeypatch.setattr(sample, "generate_recomputing", recomputing)
    config = tiny(toy_shards, **modern.RECIPES["modern"], max_steps=2, val_every=0, sample_every=2, sample_tokens=40,
                  tokenizer="gpt2")  # 40 tokens asked for, 16 positions
    train(config, tmp_path / "run", progress=False)
    assert past_context == [(16, 25)]  # the engine fills the 16 positions (start token + 15); a window makes the rest
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert (tmp_path / "run" / "samples.txt").read_text().startswith("--- step 2 ---\n")
