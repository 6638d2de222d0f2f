"""The trainer with the modern recipe: flags and the preset, learning, exact resume, sample and export."""
import pytest
import torch

from llmc_core import modern
from llmc_core.cli import main
from llmc_core.train.checkpoint import load_checkpoint
from llmc_core.train.config import TrainConfig
from llmc_core.train.parts import TrainerParts
from llmc_core.train.trainer import read_log, train
from test_train_trainer import tiny as gpt2_tiny


@pytest.fixture(scope="module")
def data(toy_shards):
    return toy_shards


def tiny(data, **changes):
    """The trainer tests' tiny run, with the modern recipe (single changes override it)."""
    return gpt2_tiny(data, **{**modern.RECIPES["modern"], **changes})


def losses(run_dir):
    return {r["step"]: r["loss"] for r in read_log(run_dir) if "loss" in r}


def test_modern_run_learns_and_records_its_recipe(data, tmp_path):
    summary = train(tiny(data, max_steps=30, val_every=30), tmp_path / "run", progress=False)
    assert summary["val_loss"] < summary["unigram_entropy"] - 1.0  # the cycle is learned from context
    state = load_checkpoint(tmp_path / "run")
    assert modern.recipe_name(TrainConfig.from_dict(state["config"])) == "modern"
    assert "lm_head" in state["model"] and "wpe.weight" not in state["model"]
    assert any(g.get("muon") for g in state["optimizer"]["param_groups"])


def test_modern_resume_reproduces_the_uninterrupted_losses(data, tmp_path):
    config = tiny(data, max_steps=6)
    train(config, tmp_path / "straight", progress=False)
    train(config, tmp_path / "resumed", stop_at=3, progress=False)
    train(config, tmp_path / "resumed", resume=True, progress=False)
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert [resumed[s] for s in range(1, 7)] == [straight[s] for s in range(1, 7)]  # Muon's momentum restored


def test_muon_group_runs_at_its_own_lr(data, tmp_path):
    train(tiny(data, max_steps=1, warmup_steps=0, val_every=0, lr=1e-3, muon_lr=0.05), tmp_path / "run", progress=False)
    groups = load_checkpoint(tmp_path / "run")["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.05, 1e-3, 1e-3], rel=1e-9)


def test_learner_pieces_are_called(data, tmp_path):
    calls = {"rms_norm": 0, "newton_schulz": 0}

    def counted(name):
        def fn(*args, **kwargs):
            calls[name] += 1
            return getattr(modern, name)(*args, **kwargs)
        return fn

    pieces = modern.Pieces(rms_norm=counted("rms_norm"), newton_schulz=counted("newton_schulz"))
    train(tiny(data, max_steps=1, val_every=0), tmp_path / "run", progress=False, parts=TrainerParts(pieces=pieces))
    # one forward: ln_1 and ln_2 of 2 blocks, and ln_f; one step: c_attn, c_proj, c_fc, c_proj of 2 blocks
    assert calls == {"rms_norm": 2 * 2 + 1, "newton_schulz": 2 * 4}
    with pytest.raises(TypeError, match="Pieces"):
        TrainerParts(pieces={"rms_norm": modern.rms_norm})


def test_cli_recipe_flags_sample_and_export_refusal(data, tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--seq-len", "16", "--vocab-size", "256",
             "--max-steps", "2", "--val-every", "0", "--sample-every", "0", "--checkpoint-every", "0", "--no-progress",
             "--tokenizer", "gpt2",
             "--train-data", str(data / "toy_train.bin"), "--val-data", str(data / "toy_val.bin"), "--out", str(run)]
    assert main(["train", "--recipe", "modern", "--softcap", "20", *flags]) == 0
    config = TrainConfig.from_dict(load_checkpoint(run)["config"])
    recipe = (config.rope, config.norm, config.qk_norm, config.mlp, config.untie_head, config.optimizer, config.softcap)
    assert recipe == (True, "rms", True, "relu2", True, "muon", 20.0)
    capsys.readouterr()
    assert main(["export", str(run), str(tmp_path / "model.bin")]) == 2
    err = capsys.readouterr().err
    assert "modern recipe" in err and "llmc sample" in err and err.count("\n") == 1
    assert not (tmp_path / "model.bin").exists()
    assert main(["sample", str(run), "--tokens", "3"]) == 0
    assert main(["train", "--norm", "batch", *flags]) == 2
    assert "norm must be one of" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--recipe", "gpt2", "--max-steps", "3"]) == 2
    assert "cannot change" in capsys.readouterr().err


def test_gpt2_recipe_is_unchanged(data, tmp_path):
    config = tiny(data, **modern.RECIPES["gpt2"], max_steps=1, val_every=0)
    assert modern.recipe_name(config) == "gpt2"
    train(config, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run")
    assert "wpe.weight" in state["model"] and "lm_head" not in state["model"]
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values())


@pytest.mark.parametrize("temperature", [0.0, 1.0], ids=["greedy", "sampled"])
def test_sampling_by_recomputation_picks_what_the_kv_cache_engine_picks(temperature):
    """The modern recipe samples without the engine; on a GPT-2 both ways must choose the same tokens."""
    from llmc_core.gpt2 import GPT2, GPT2Config
    from llmc_core.inference import SamplingParams
    from llmc_core.train.sample import generate, generate_recomputing
    model = GPT2(GPT2Config(block_size=32, vocab_size=64, n_layer=2, n_head=2, n_embd=16), seed=3).eval()
    prompt = [1, 2, 3, 4]
    cached = generate(model, prompt, 20, temperature=temperature, top_k=0, seed=7)
    sampling = SamplingParams(temperature=temperature, top_k=0, seed=7)
    assert generate_recomputing(model, prompt, 20, sampling) == cached
