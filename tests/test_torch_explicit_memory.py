"""Lesson 05's memory accounting: saved-tensor hooks, the saved-tensor table and the profiler-based peak.

Saved bytes are deterministic, so these are exact statements about what each Function keeps,
computed by hand from the shapes; no timing is tested here (see benchmarks/).
"""
import pytest
import torch

from llmc_core.gpt2 import GPT2Config

CONFIG = GPT2Config(block_size=16, vocab_size=50, n_layer=3, n_head=2, n_embd=8)
B, T = 2, 16
F32 = 4  # bytes per float32


LESSON = "05_torch_explicit_backward"  # the notebook `nb` (tests/conftest.py) loads


def batch(seed=0):
    tokens = torch.randint(0, CONFIG.vocab_size, (2, B, T), generator=torch.Generator().manual_seed(seed))
    return tokens[0].clone(), tokens[1].clone()  # separate storages, counted separately


def saved_table(nb, **options):
    model = nb.ExplicitGPT2(CONFIG, **options)
    idx, targets = batch()
    logits, loss = model(idx, targets)
    return nb.saved_tensor_table(loss, alive=[logits, *model.parameters()])


def saved_bytes(table):
    return sum(row["bytes"] for row in table.values())


def leaf(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)


# Each case: a forward step of PyTorch's own operations, the tensors it leaves alive, and the bytes it saves by hand.
X, W = (3, 4), (4, 5)
HOOK_CASES = {
    "tanh keeps its output": (lambda x, w: torch.tanh(x).sum(), lambda x, w: [], 12 * F32),
    "matmul keeps both operands": (lambda x, w: x @ w, lambda x, w: [], (12 + 20) * F32),
    "x * x keeps x once": (lambda x, w: x * x, lambda x, w: [], 12 * F32),
    "views of one storage count it once": (lambda x, w: torch.mul(*x.split(2, dim=1)), lambda x, w: [], 12 * F32),
    "sigmoid's output and x": (lambda x, w: torch.sigmoid(x) * x, lambda x, w: [], (12 + 12) * F32),
    "alive weight left out": (lambda x, w: torch.tanh(x @ w), lambda x, w: [w], (12 + 15) * F32),
    "everything alive": (lambda x, w: x @ w, lambda x, w: [x, w], 0),
}


@pytest.mark.parametrize("case", list(HOOK_CASES))
def test_saved_tensor_bytes_by_hand(nb, case):
    step, alive, expected = HOOK_CASES[case]
    x, w = leaf(1, *X), leaf(2, *W)
    assert nb.saved_tensor_bytes(lambda: step(x, w), alive=alive(x, w)) == expected


def test_nothing_is_saved_without_grad(nb):
    x = leaf(3, *X)
    with torch.no_grad():
        assert nb.saved_tensor_bytes(lambda: torch.tanh(x)) == 0


@pytest.mark.parametrize("options", [{}, {"recompute_gelu": True, "recompute_attention": True}],
                         ids=["stored", "recomputed"])
def test_hooks_and_graph_walk_agree_on_the_explicit_model(nb, options):
    model = nb.ExplicitGPT2(CONFIG, **options)
    idx, targets = batch(2)
    alive = [idx, targets, *model.parameters()]
    walked = saved_bytes(nb.saved_tensor_table(model(idx, targets)[1], alive=alive))
    assert nb.saved_tensor_bytes(lambda: model(idx, targets), alive=alive) == walked


def test_recomputing_gelu_saves_one_hidden_activation_per_layer(nb):
    stored, recomputed = saved_table(nb), saved_table(nb, recompute_gelu=True)
    hidden = B * T * 4 * CONFIG.n_embd * F32  # gelu(pre): (B, T, 4C), once per layer
    assert saved_bytes(stored) - saved_bytes(recomputed) == CONFIG.n_layer * hidden
    assert "GeluFunctionBackward" not in recomputed
    assert recomputed["GeluLinearFunctionBackward"]["count"] == CONFIG.n_layer


def test_recomputing_attention_saves_the_attention_matrix_per_layer(nb):
    stored, recomputed = saved_table(nb), saved_table(nb, recompute_attention=True)
    att = B * CONFIG.n_head * T * T * F32  # (B, NH, T, T), once per layer
    assert saved_bytes(stored) - saved_bytes(recomputed) == CONFIG.n_layer * att
    assert recomputed["AttentionRecomputeFunctionBackward"]["count"] == CONFIG.n_layer


def test_fused_loss_keeps_no_probabilities(nb):
    """With the logits alive anyway, the loss keeps only targets (int64) and lse (float32), both (B, T)."""
    row = saved_table(nb)["SoftmaxCrossEntropyFunctionBackward"]
    assert row["bytes"] == B * T * (8 + F32)


def test_layernorm_keeps_only_rstd_of_its_own(nb):
    """Each LayerNorm saves its output, which the linear layer after it keeps anyway (and counted first)."""
    row = saved_table(nb)["LayerNormFunctionBackward"]
    assert row["count"] == 2 * CONFIG.n_layer + 1
    assert row["shapes"] == [(B, T, CONFIG.n_embd), (CONFIG.n_embd,), (CONFIG.n_embd,), (B, T)]
    assert row["bytes"] == row["count"] * B * T * F32


def test_peak_memory_counts_a_freed_temporary(nb):
    """A 1000x1000 float32 tensor that lives only inside the step is its peak; its sum adds 4 bytes."""
    peak = nb.peak_memory(lambda: torch.ones(1000, 1000).sum())
    assert 4_000_000 <= peak <= 4_000_000 + 64


def test_peak_memory_of_a_step_bounds_what_it_keeps(nb):
    """The peak holds every saved activation (end of forward) and, later, every gradient (end of backward)."""
    model = nb.ExplicitGPT2(CONFIG)
    idx, targets = batch(1)
    peak = nb.peak_memory(lambda: nb.training_step(model, idx, targets))
    logits, loss = model(idx, targets)
    kept = saved_bytes(nb.saved_tensor_table(loss, alive=list(model.parameters())))
    gradients = sum(p.numel() * F32 for p in model.parameters())
    assert peak >= kept and peak >= gradients
