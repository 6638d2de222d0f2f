"""Lesson 08's solutions against independent oracles and the trainer's own implementation.

Oracles: PyTorch's LR schedulers; parameter names listed by hand; autograd on one big batch;
the trainer's ShardLoader reading a real shard; torch's FlopCounterMode counting the matmuls of
a forward + backward; PyTorch's clip_grad_norm_; the trainer's own train_step on the same seeded
model and batches; a 2-process gloo DDP run. Then the notebook's functions plugged into the
trainer must reproduce the trainer's own run and pass its determinism property (resume equals
uninterrupted).
"""
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llmc_core.gpt2 import GPT2, GPT2Config
from llmc_core.train import optim
from llmc_core.train.config import TrainConfig
from llmc_core.train.loader import ShardLoader
from llmc_core.train.parts import TrainerParts, resume_and_straight
from llmc_core.train.shards import write_shard
from llmc_core.train.trainer import Runtime, TrainingDiverged, read_log, setup, train, train_step

LESSON = "08_fast_trainer"  # the notebook `nb` (tests/conftest.py) loads


@pytest.fixture(scope="module")
def fast(notebooks):
    return notebooks("07_cuda_kernels_fast")


# ---------------------------------------------------------------- LR schedule

@pytest.mark.parametrize("warmup, max_steps, min_frac", [(10, 100, 0.1), (1, 20, 0.0), (7, 50, 0.25)],
                         ids=["w10", "w1", "w7"])
def test_lr_schedule_matches_torch_schedulers(nb, warmup, max_steps, min_frac):
    # oracle: LinearLR from lr/warmup to lr over the warmup steps, then CosineAnnealingLR to the floor
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=6e-4)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0,
                                             total_iters=max(warmup - 1, 1))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_steps - warmup, eta_min=6e-4 * min_frac)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[warmup])
    expected = []
    for _ in range(max_steps):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [nb.lr_at(s, 6e-4, warmup, max_steps, min_frac) for s in range(max_steps)]
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("warmup, max_steps, min_frac", [(0, 11, 0.0), (6, 6, 0.25), (20, 400, 0.1)],
                         ids=["w0", "allwarm", "cpu"])
def test_lr_schedule_equals_the_trainers(nb, warmup, max_steps, min_frac):
    ours = [nb.lr_at(s, 3e-3, warmup, max_steps, min_frac) for s in range(max_steps + 5)]
    theirs = [optim.lr_at(s, 3e-3, warmup, max_steps, min_frac) for s in range(max_steps + 5)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
    assert ours[-1] == pytest.approx(3e-3 * min_frac, rel=1e-12, abs=1e-18)  # the floor after max_steps


# ---------------------------------------------------------------- parameter groups

def test_param_groups_follow_the_rule_written_by_hand(nb):
    model = GPT2(GPT2Config(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=8))
    decay, no_decay = nb.param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    by_hand = {"wte.weight", "wpe.weight"} | {f"h.{i}.{m}.weight" for i in range(2)
                                              for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    assert {names[id(p)] for p in decay["params"]} == by_hand
    assert {names[id(p)] for p in no_decay["params"]} == set(names.values()) - by_hand
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    theirs = optim.param_groups(model, 0.1)
    assert [[id(p) for p in g["params"]] for g in (decay, no_decay)] == [[id(p) for p in g["params"]] for g in theirs]


# ---------------------------------------------------------------- gradient accumulation

@pytest.mark.parametrize("args", [(524288, 64, 1024, 8), (1024, 8, 128, 1), (96, 3, 4, 2), (1000, 8, 128, 1)],
                         ids=["gpt2x8", "cpu", "odd", "bad"])
def test_grad_accum_steps_equals_the_trainers(nb, args):
    try:
        expected = optim.grad_accum_steps(*args)
    except ValueError:
        with pytest.raises(ValueError, match="not a multiple"):
            nb.grad_accum_steps(*args)
    else:
        assert nb.grad_accum_steps(*args) == expected


@pytest.mark.parametrize("micro, seed", [(2, 0), (4, 1), (8, 2)], ids=["k2", "k4", "k8"])
def test_accumulated_gradient_equals_the_big_batch_gradient(nb, micro, seed):
    config = GPT2Config(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=32)
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randint(0, 64, (8, 16), generator=generator), torch.randint(0, 64, (8, 16), generator=generator)
    model = GPT2(config, seed=seed)
    rows = 8 // micro
    loss = nb.accumulate_gradients(model, [(x[i:i + rows], y[i:i + rows]) for i in range(0, 8, rows)])
    oracle = GPT2(config, seed=seed)
    _, big = oracle(x, y)
    big.backward()  # autograd on one batch of 8: the gradient of the mean over all 128 tokens
    assert loss == pytest.approx(big.item(), rel=1e-6)
    for (name, p), q in zip(model.named_parameters(), oracle.parameters()):
        # float32, summed in a different order: rounding only
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------- data loading

@pytest.mark.parametrize("W, M, B, T, n", [(2, 2, 3, 16, 1000), (1, 3, 2, 8, 777), (4, 1, 1, 4, 130)],
                         ids=["w2m2", "w1m3", "w4m1"])
def test_batch_start_matches_the_trainers_loader(nb, tmp_path, W, M, B, T, n):
    tokens = np.random.default_rng(W * 10 + M).integers(0, 50000, size=n)
    write_shard(tmp_path / "t_train.bin", tokens)
    loaders = [ShardLoader(tmp_path / "t_train.bin", B, T, rank, W, M) for rank in range(W)]
    steps_per_pass = ((n - 1) // (B * T)) // (W * M)
    for step in range(2 * steps_per_pass + 3):  # two wrap-arounds
        for micro in range(M):
            for rank in range(W):
                x, y = loaders[rank].next_batch()
                start = nb.batch_start(step, micro, rank, W, M, B, T, n)
                np.testing.assert_array_equal(x.numpy().ravel(), tokens[start:start + B * T])
                np.testing.assert_array_equal(y.numpy().ravel(), tokens[start + 1:start + B * T + 1])


# ---------------------------------------------------------------- FLOPs and MFU

def test_flops_per_token_against_counted_matmuls(nb):
    # oracle: FlopCounterMode counts the FLOPs of every matmul in a forward + backward.
    # aten.mm is the parameter matmuls (wte as the lm head, c_attn, c_proj, c_fc): 6 per weight per token.
    # aten.bmm is attention written out over the full T x T; llm.c's 6LCT counts the causal half of it.
    L, C, T, B = 2, 32, 16, 3
    model = GPT2(GPT2Config(block_size=T, vocab_size=64, n_layer=L, n_head=2, n_embd=C), attention="manual")
    x = torch.randint(0, 64, (B, T), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        _, loss = model(x, x)
        loss.backward()
    counts = counter.get_flop_counts()["Global"]
    tokens = B * T
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and n != "wpe.weight")
    counted = counts[torch.ops.aten.mm] // tokens + counts[torch.ops.aten.bmm] // tokens // 2
    assert nb.flops_per_token(matmul_params, L, C, T) == counted
    n = model.num_parameters()
    assert nb.flops_per_token(n, L, C, T) == optim.flops_per_token(n, L, C, T)


def test_mfu_is_the_trainers_formula(nb):
    flops = optim.flops_per_token(124_475_904, 12, 768, 1024)
    for tokens_per_s, world in ((400_000.0, 1), (3_000_000.0, 8)):
        # the trainer logs flops_token * tokens_per_s / (peak * W)
        expected = flops * tokens_per_s / (989e12 * world)
        assert nb.mfu(tokens_per_s, flops, 989e12, world) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        nb.mfu(1000.0, flops, 0.0)


# ---------------------------------------------------------------- the trainer with the notebook's parts

@pytest.fixture(scope="module")
def toy_data(toy_shards):
    return toy_shards


def tiny(data, **changes):
    base = TrainConfig(n_layer=2, n_head=2, n_embd=32, seq_len=16, vocab_size=256, batch_size=2,
                       total_batch_tokens=64, max_steps=6, lr=1e-2, warmup_steps=2, val_every=0,
                       sample_every=0, checkpoint_every=0,
                       train_data=str(data / "toy_train.bin"), val_data=str(data / "toy_val.bin"))
    return base.replace(**changes)


def notebook_parts(nb):
    return TrainerParts(lr_at=nb.lr_at, param_groups=nb.param_groups, grad_accum_steps=nb.grad_accum_steps,
                        flops_per_token=nb.flops_per_token, train_step=nb.train_step,
                        training_state=nb.training_state, restore_training_state=nb.restore_training_state)


def test_trainer_with_the_notebooks_parts_reproduces_its_own_run(nb, toy_data, tmp_path):
    train(tiny(toy_data), tmp_path / "own", progress=False)
    train(tiny(toy_data), tmp_path / "mine", progress=False, parts=notebook_parts(nb))
    own, mine = read_log(tmp_path / "own"), read_log(tmp_path / "mine")
    # the notebook's clipping and loss sum round differently from PyTorch's in the last float32 bits
    np.testing.assert_allclose([r["loss"] for r in mine], [r["loss"] for r in own], rtol=0, atol=1e-5)
    np.testing.assert_allclose([r["grad_norm"] for r in mine], [r["grad_norm"] for r in own], rtol=1e-4, atol=0)
    np.testing.assert_allclose([r["lr"] for r in mine], [r["lr"] for r in own], rtol=1e-12, atol=0)


def test_notebooks_parts_pass_the_trainers_determinism_property(nb, toy_data, tmp_path):
    straight, resumed = resume_and_straight(tiny(toy_data, max_steps=8), tmp_path, stop_at=3, parts=notebook_parts(nb))
    assert sorted(resumed) == list(range(1, 9))
    assert [resumed[s] for s in range(1, 9)] == [straight[s] for s in range(1, 9)]  # bit-identical on the CPU


@pytest.mark.parametrize("forget", ["optimizer", "train_loader"])
def test_a_checkpoint_missing_a_part_breaks_the_determinism_property(nb, toy_data, tmp_path, forget):
    # the property can fail: restoring without AdamW's moments or the data position changes the losses
    def restore(state, model, optimizer, loader):
        kept = {k: v for k, v in state.items() if k != forget}
        model.load_state_dict(kept["model"])
        if "optimizer" in kept:
            optimizer.load_state_dict(kept["optimizer"])
        if "train_loader" in kept:
            loader.load_state_dict(kept["train_loader"])
        return kept["step"]

    parts = TrainerParts(restore_training_state=restore)
    straight, resumed = resume_and_straight(tiny(toy_data, max_steps=6), tmp_path, stop_at=3, parts=parts)
    assert [resumed[s] for s in (1, 2, 3)] == [straight[s] for s in (1, 2, 3)]
    # (a step's loss is computed before its update: AdamW's lost moments show from step 5 on)
    assert [resumed[s] for s in (4, 5, 6)] != [straight[s] for s in (4, 5, 6)]


# ---------------------------------------------------------------- clipping and the training step

@pytest.mark.parametrize("max_norm", [0.05, 1e3, math.inf], ids=["clips", "below", "inf"])
def test_clip_grad_norm_matches_torch(nb, max_norm):
    config = GPT2Config(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=32)
    x = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(5))
    ours, oracle = GPT2(config, seed=5), GPT2(config, seed=5)
    for model in (ours, oracle):
        model(x, x)[1].backward()
    norm = nb.clip_grad_norm(ours.parameters(), max_norm)
    expected = torch.nn.utils.clip_grad_norm_(oracle.parameters(), max_norm)
    assert norm == pytest.approx(expected.item(), rel=1e-5)
    for (name, p), q in zip(ours.named_parameters(), oracle.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-8, msg=name)


def test_train_step_equals_the_trainers_train_step(nb, toy_data, tmp_path):
    # the same seeded model, optimizer and loader, built by the trainer's setup; 4 steps of 2 micro-batches
    config = tiny(toy_data, grad_clip=0.3, max_steps=4)
    own = setup(config, tmp_path / "own", Runtime(config), False, None, TrainerParts())
    mine = setup(config, tmp_path / "mine", Runtime(config), False, None, TrainerParts(train_step=nb.train_step))
    assert own.grad_accum == 2
    for _ in range(4):
        theirs, ours = train_step(own), train_step(mine)
        assert ours["step"] == theirs["step"] and ours["lr"] == theirs["lr"]
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-6)
        assert ours["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=1e-5)
    for (name, p), q in zip(mine.raw_model.named_parameters(), own.raw_model.parameters()):
        # atol 1e-5: the key part of c_attn.bias has a zero gradient in exact arithmetic (softmax ignores a
        # shift shared by all keys), and AdamW normalizes its float32 rounding noise into visible steps
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_a_plugged_in_step_that_diverges_stops_the_run(toy_data, tmp_path):
    def raises(*args):
        raise FloatingPointError("the loss is nan")

    def returns_nan(*args):
        return float("nan"), 1.0

    with pytest.raises(TrainingDiverged, match="step 1 .*the loss is nan"):
        train(tiny(toy_data), tmp_path / "raises", progress=False, parts=TrainerParts(train_step=raises))
    with pytest.raises(TrainingDiverged, match="instead of raising FloatingPointError"):
        train(tiny(toy_data), tmp_path / "nan", progress=False, parts=TrainerParts(train_step=returns_nan))


def test_the_trainer_calls_the_plugged_in_parts(toy_data, tmp_path):
    calls = {"groups": 0, "accum": 0, "flops": 0}

    def groups(model, wd):
        calls["groups"] += 1
        return optim.param_groups(model, wd)

    def accum(*args):
        calls["accum"] += 1
        return optim.grad_accum_steps(*args)

    def flops(*args):
        calls["flops"] += 1
        return optim.flops_per_token(*args)

    parts = TrainerParts(lr_at=lambda step, *_: 1e-3 * (step + 1), param_groups=groups, grad_accum_steps=accum,
                         flops_per_token=flops)
    train(tiny(toy_data, max_steps=3), tmp_path / "run", progress=False, parts=parts)
    assert [r["lr"] for r in read_log(tmp_path / "run") if "lr" in r] == pytest.approx([1e-3, 2e-3, 3e-3], rel=1e-12)
    assert calls == {"groups": 1, "accum": 1, "flops": 1}


def test_parts_must_be_functions(toy_data, tmp_path):
    with pytest.raises(TypeError, match="lr_at"):
        TrainerParts(lr_at=0.1)
    with pytest.raises(TypeError, match="training_state"):
        TrainerParts(training_state=None)
    with pytest.raises(TypeError, match="TrainerParts"):
        train(tiny(toy_data), tmp_path / "bad", parts={"lr_at": optim.lr_at})


# ---------------------------------------------------------------- DDP

def test_two_gloo_processes_match_one_process_with_accumulation():
    from llmc_core.train.ddp_demo import ddp_gradients, single_process_gradients
    ddp, single = ddp_gradients(world_size=2, micro_steps=2), single_process_gradients(chunks=4)
    assert set(ddp) == set(single)
    for name in single:
        # float32 sums in another order (the all-reduce averages two partial sums)
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-5, atol=1e-7, msg=name)
