"""The training loop on tiny models: logging, exact resume, gradient accumulation, NaN stop."""
import json

import numpy as np
import pytest
import torch

from llmc_core.gpt2 import GPT2
from llmc_core.train.checkpoint import load_checkpoint
from llmc_core.train.config import TrainConfig
from llmc_core.train.optim import lr_at, param_groups
from llmc_core.train.parts import resume_and_straight
from llmc_core.train.trainer import TrainingDiverged, read_log, train


@pytest.fixture(scope="module")
def data(toy_shards):
    return toy_shards


def tiny(data, **changes):
    base = TrainConfig(n_layer=2, n_head=2, n_embd=32, seq_len=16, vocab_size=256, batch_size=4,
                       total_batch_tokens=64, max_steps=8, lr=1e-2, warmup_steps=2, val_every=4,
                       val_batches=2, sample_every=0, checkpoint_every=0,
                       train_data=str(data / "toy_train.bin"), val_data=str(data / "toy_val.bin"))
    return base.replace(**changes)


def losses(run_dir):
    return {r["step"]: r["loss"] for r in read_log(run_dir) if "loss" in r}


def test_run_logs_every_step_and_learns(data, tmp_path):
    summary = train(tiny(data, max_steps=30, sample_every=30, sample_tokens=8), tmp_path / "run", progress=False)
    records = read_log(tmp_path / "run")
    assert records[0]["step"] == 0 and "val_loss" in records[0]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 31))
    for r in steps:
        assert {"step", "loss", "lr", "tokens_per_s", "mfu"} <= set(r)
        assert r["mfu"] is None  # no peak FLOPS known for a CPU
    assert [r["step"] for r in records if "val_loss" in r] == [0, 4, 8, 12, 16, 20, 24, 28, 30]
    # the cycle is predictable from context: the loss must fall well below the unigram entropy
    assert summary["val_loss"] < summary["unigram_entropy"] - 1.0
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert "--- step 30 ---" in (tmp_path / "run" / "samples.txt").read_text()


def test_resume_reproduces_the_uninterrupted_losses(data, tmp_path):
    # the property lesson 08 checks the learner's checkpoint code with, on the trainer's own parts
    straight, resumed = resume_and_straight(tiny(data, max_steps=8), tmp_path, stop_at=3)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.prev.pt")["step"] == 3  # where it was stopped
    assert sorted(resumed) == list(range(1, 9))  # steps 4.. redone after the checkpoint, no duplicates
    # on the CPU, with the same thread count, the resumed run is bit-identical (tolerance 0)
    assert [resumed[s] for s in range(1, 9)] == [straight[s] for s in range(1, 9)]


def test_gradient_accumulation_matches_one_big_batch(data, tmp_path):
    # 4 micro-batches of 1 sequence vs 1 batch of 4 sequences: the same 64 tokens per step
    train(tiny(data, batch_size=1, max_steps=5), tmp_path / "accum", progress=False)
    train(tiny(data, batch_size=4, max_steps=5), tmp_path / "big", progress=False)
    a, b = losses(tmp_path / "accum"), losses(tmp_path / "big")
    np.testing.assert_allclose([a[s] for s in a], [b[s] for s in b], rtol=0, atol=1e-5)


def test_manual_and_sdpa_attention_train_alike(data, tmp_path):
    train(tiny(data, attention="manual", max_steps=4), tmp_path / "manual", progress=False)
    train(tiny(data, attention="sdpa", max_steps=4), tmp_path / "sdpa", progress=False)
    a, b = losses(tmp_path / "manual"), losses(tmp_path / "sdpa")
    np.testing.assert_allclose([a[s] for s in a], [b[s] for s in b], rtol=0, atol=1e-5)


def test_nan_loss_stops_and_keeps_the_last_checkpoint(data, tmp_path):
    # LR 1e30 blows the weights up after step 1, so the loss of step 2 overflows to inf/nan
    config = tiny(data, lr=1e30, warmup_steps=0, checkpoint_every=1, val_every=0)
    with pytest.raises(TrainingDiverged, match=r"step 2: the loss is (nan|inf).*checkpoint.*\(step 1\)"):
        train(config, tmp_path / "nan", progress=False)
    state = load_checkpoint(tmp_path / "nan")
    assert state["step"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_total_batch_must_divide_into_micro_batches(data, tmp_path):
    with pytest.raises(ValueError, match="not a multiple"):
        train(tiny(data, total_batch_tokens=100), tmp_path / "bad", progress=False)


def test_decay_groups_split_by_dimension():
    model = GPT2(TrainConfig(n_layer=2, n_head=2, n_embd=32, seq_len=16, vocab_size=256).model_config())
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed == {"wte.weight", "wpe.weight"} | {
        f"h.{i}.{m}.weight" for i in range(2) for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    assert all("bias" in names[id(p)] or "ln_" in names[id(p)] for p in no_decay["params"])
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


@pytest.mark.parametrize("warmup, max_steps, min_frac", [(10, 100, 0.1), (1, 20, 0.0), (5, 5, 0.1)],
                         ids=["w10", "w1", "allwarm"])
def test_lr_schedule_matches_torch_schedulers(warmup, max_steps, min_frac):
    # oracle: PyTorch's LinearLR warmup followed by CosineAnnealingLR
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=6e-4)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0,
                                             total_iters=max(warmup - 1, 1))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(max_steps - warmup, 1), eta_min=6e-4 * min_frac)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[warmup])
    expected = []
    for _ in range(max_steps if max_steps > warmup else warmup):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [lr_at(s, 6e-4, warmup, max_steps, min_frac) for s in range(len(expected))]
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=0)
    assert lr_at(max_steps, 6e-4, warmup, max_steps, min_frac) == pytest.approx(6e-4 * min_frac, rel=1e-9, abs=1e-15)


def test_config_json_is_written(data, tmp_path):
    train(tiny(data, max_steps=1, val_every=0), tmp_path / "cfg", progress=False)
    saved = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert TrainConfig.from_dict(saved) == tiny(data, max_steps=1, val_every=0)


def test_train_step_alone_is_the_loops_first_step(data, tmp_path):
    from llmc_core.train.parts import TrainerParts
    from llmc_core.train.trainer import Runtime, setup, train_step
    config = tiny(data, max_steps=2, val_every=0)
    train(config, tmp_path / "loop", progress=False)
    run = setup(config, tmp_path / "alone", Runtime(config), False, None, TrainerParts())
    before = run.raw_model.wte.weight.detach().clone()
    record = train_step(run)
    assert run.step == 1 and record["step"] == 1
    assert record["loss"] == losses(tmp_path / "loop")[1]  # same seed, same batch: bit-identical on the CPU
    assert record["lr"] == lr_at(0, config.lr, config.warmup_steps, config.max_steps, config.min_lr_frac)
    assert not torch.equal(before, run.raw_model.wte.weight)  # AdamW moved the weights


def test_a_time_budgeted_run_stops_on_time_and_ends_its_lr_decay(data, tmp_path):
    budget = 6.0
    config = tiny(data, max_steps=100_000, time_budget=budget, warmup_steps=2, val_every=25)
    summary = train(config, tmp_path / "budget", progress=False)
    steps = [r for r in read_log(tmp_path / "budget") if "loss" in r]
    assert len(steps) >= 1 and summary["step"] == steps[-1]["step"]
    # on time: the run keeps what its last evaluation and checkpoint took free for the final ones
    # (wide slack: the setup and the steps share a loaded machine)
    assert budget * 0.6 < summary["wall_s"] < budget * 1.5
    assert steps[-1]["lr"] == pytest.approx(config.lr * config.min_lr_frac, rel=1e-12)  # the decay's end
    assert all(b["lr"] <= a["lr"] for a, b in zip(steps[2:], steps[3:]))  # after warmup the LR only falls
    assert "val_loss" in steps[-1]  # the last step is evaluated, as a final step


@pytest.mark.parametrize("device,local_rank,expected", [("cuda", "0", "cuda:0"), ("cuda", "1", "cuda:1"),
                                                        ("cuda:1", "0", "cuda:1")])
def test_plain_cuda_means_this_processs_gpu(monkeypatch, device, local_rank, expected):
    """torch.cuda.set_device refuses a device without an index: `--device cuda` once crashed on a GPU."""
    from llmc_core.train.trainer import Runtime
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.append(torch.device(d)))
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    runtime = Runtime(TrainConfig(device=device))
    assert runtime.device == torch.device(expected) and chosen == [torch.device(expected)]
    assert chosen[0].index is not None
