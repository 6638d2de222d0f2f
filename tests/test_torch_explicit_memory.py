"""Lesson 05's memory accounting: the saved-tensor table and the profiler-based peak.

Saved bytes are deterministic, so these are exact statements about what each Function keeps,
computed by hand from the shapes; no timing is tested here (see benchmarks/).
"""
import pytest
import torch

from llmc_core import load_notebook
from llmc_core.course import solution_path
from llmc_core.gpt2 import GPT2Config

CONFIG = GPT2Config(block_size=16, vocab_size=50, n_layer=3, n_head=2, n_embd=8)
B, T = 2, 16


@pytest.fixture(scope="module")
def nb():
    module = load_notebook(solution_path("05_torch_explicit_backward"))
    assert module.cell_errors == []
    return module


def saved_table(nb, recompute_gelu):
    model = nb.ExplicitGPT2(CONFIG, recompute_gelu=recompute_gelu)
    tokens = torch.randint(0, CONFIG.vocab_size, (2, B, T), generator=torch.Generator().manual_seed(0))
    idx, targets = tokens[0].clone(), tokens[1].clone()  # separate storages, counted separately
    logits, loss = model(idx, targets)
    return nb.saved_tensor_table(loss, alive=[logits, *model.parameters()])


def saved_bytes(table):
    return sum(row["bytes"] for row in table.values())


def test_recomputing_gelu_saves_one_hidden_activation_per_layer(nb):
    stored, recomputed = saved_table(nb, False), saved_table(nb, True)
    hidden = B * T * 4 * CONFIG.n_embd * 4  # gelu(pre): (B, T, 4C) float32, once per layer
    assert saved_bytes(stored) - saved_bytes(recomputed) == CONFIG.n_layer * hidden
    assert "GeluFunctionBackward" not in recomputed and recomputed["GeluLinearFunctionBackward"]["count"] == CONFIG.n_layer


def test_fused_loss_keeps_no_probabilities(nb):
    """With the logits alive anyway, the loss keeps only targets (int64) and lse (float32), both (B, T)."""
    row = saved_table(nb, False)["SoftmaxCrossEntropyFunctionBackward"]
    assert row["bytes"] == B * T * (8 + 4)


def test_layernorm_keeps_statistics_not_its_output(nb):
    row = saved_table(nb, False)["LayerNormFunctionBackward"]
    assert row["count"] == 2 * CONFIG.n_layer + 1
    assert row["shapes"] == [(B, T, CONFIG.n_embd), (CONFIG.n_embd,), (B, T), (B, T)]


def test_peak_memory_counts_a_freed_temporary(nb):
    """A 1000x1000 float32 tensor that lives only inside the step is its peak; its sum adds 4 bytes."""
    peak = nb.peak_memory(lambda: torch.ones(1000, 1000).sum())
    assert 4_000_000 <= peak <= 4_000_000 + 64


def test_peak_memory_of_a_step_bounds_what_it_keeps(nb):
    """The peak holds every saved activation (end of forward) and, later, every gradient (end of backward)."""
    model = nb.ExplicitGPT2(CONFIG)
    idx, targets = torch.randint(0, CONFIG.vocab_size, (2, B, T), generator=torch.Generator().manual_seed(1))
    peak = nb.peak_memory(lambda: nb.training_step(model, idx, targets))
    logits, loss = model(idx, targets)
    kept = saved_bytes(nb.saved_tensor_table(loss, alive=list(model.parameters())))
    gradients = sum(p.numel() * 4 for p in model.parameters())
    assert peak >= kept and peak >= gradients
