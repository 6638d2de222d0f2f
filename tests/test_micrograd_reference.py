"""The solution of lesson 01 (micrograd) against PyTorch autograd (float64) and finite differences.

Random expression graphs come from hypothesis: each step applies one op to earlier nodes (often
the same node twice), choosing only ops whose inputs are in their domain, so no example is
rejected. Values and gradients must match torch within rtol 1e-6 (atol 1e-9).
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

LESSON = "01_micrograd"  # the notebook `nb` (tests/conftest.py) loads

RTOL, ATOL = 1e-6, 1e-9


def assert_close(ours, reference, what, rtol=RTOL, atol=ATOL):
    ours, reference = np.asarray(ours, dtype=float), np.asarray(reference, dtype=float)
    bad = ~np.isclose(ours, reference, rtol=rtol, atol=atol)
    assert not bad.any(), (f"{what}: ours {ours[bad][:5]} vs torch {reference[bad][:5]}, "
                           f"max diff {np.abs(ours - reference).max():.3g} (rtol {rtol}, atol {atol})")


# --- random expression graphs vs torch ------------------------------------------------------------

# name: (number of node operands, domain test on the operands' values and the constant c, how to apply it).
# `apply` is written once and runs on Values and on torch tensors alike; c is a plain float.
OPS = {
    "add": (2, lambda x, y, c: True, lambda x, y, c: x + y),
    "sub": (2, lambda x, y, c: True, lambda x, y, c: x - y),
    "mul": (2, lambda x, y, c: True, lambda x, y, c: x * y),
    "div": (2, lambda x, y, c: abs(y) > 0.2, lambda x, y, c: x / y),
    "add_const": (1, lambda x, y, c: True, lambda x, y, c: x + c),
    "const_add": (1, lambda x, y, c: True, lambda x, y, c: c + x),
    "const_sub": (1, lambda x, y, c: True, lambda x, y, c: c - x),
    "sub_const": (1, lambda x, y, c: True, lambda x, y, c: x - c),
    "const_mul": (1, lambda x, y, c: True, lambda x, y, c: c * x),
    "div_const": (1, lambda x, y, c: True, lambda x, y, c: x / c),
    "const_div": (1, lambda x, y, c: abs(x) > 0.2, lambda x, y, c: c / x),
    "neg": (1, lambda x, y, c: True, lambda x, y, c: -x),
    "square": (1, lambda x, y, c: True, lambda x, y, c: x ** 2),
    "cube": (1, lambda x, y, c: True, lambda x, y, c: x ** 3),
    "reciprocal": (1, lambda x, y, c: abs(x) > 0.2, lambda x, y, c: x ** -1),
    "sqrt": (1, lambda x, y, c: x > 0.2, lambda x, y, c: x ** 0.5),
    "pow_1_5": (1, lambda x, y, c: x > 0.2, lambda x, y, c: x ** 1.5),
    "tanh": (1, lambda x, y, c: True, lambda x, y, c: x.tanh() if hasattr(x, "_prev") else torch.tanh(x)),
    "relu": (1, lambda x, y, c: abs(x) > 1e-3, lambda x, y, c: x.relu() if hasattr(x, "_prev") else torch.relu(x)),
    "exp": (1, lambda x, y, c: x < 4.0, lambda x, y, c: x.exp() if hasattr(x, "_prev") else torch.exp(x)),
    "log": (1, lambda x, y, c: x > 0.2, lambda x, y, c: x.log() if hasattr(x, "_prev") else torch.log(x)),
}
LIMIT = 1e3  # keep every node's value below this, so no gradient overflows


@st.composite
def programs(draw):
    """(leaf values, steps): each step is (op, i, j, c) applied to nodes i and j (j ignored by unary ops)."""
    nonzero = st.floats(-2.0, 2.0, allow_nan=False).filter(lambda v: abs(v) > 0.1)
    leaves = draw(st.lists(nonzero, min_size=1, max_size=4))
    values, steps = list(leaves), []
    for _ in range(draw(st.integers(1, 14))):
        i = draw(st.integers(0, len(values) - 1))
        j = draw(st.integers(0, len(values) - 1))  # often i itself: a node used twice
        c = draw(st.sampled_from([-1.5, -0.5, 0.75, 2.0, 3.0]))
        x, y = values[i], values[j]
        allowed = []
        for name, (_, valid, apply) in OPS.items():
            if valid(x, y, c):
                result = float(apply(torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64), c))
                if math.isfinite(result) and abs(result) < LIMIT:
                    allowed.append((name, result))
        name, result = draw(st.sampled_from(allowed))  # tanh and neg are always allowed
        steps.append((name, i, j, c))
        values.append(result)
    return leaves, steps


def torch_grads(leaves):
    return [0.0 if t.grad is None else t.grad.item() for t in leaves]  # None: the leaf is not in the graph


def run_program(leaves, steps, make_leaf):
    """Build the program's graph from leaf nodes; the output weighs every node, so each gets a gradient."""
    nodes = [make_leaf(x) for x in leaves]
    for name, i, j, c in steps:
        nodes.append(OPS[name][2](nodes[i], nodes[j], c))
    out = nodes[-1]
    for k, node in enumerate(nodes[len(leaves):-1]):
        out = out + node * (0.1 * (k + 1))
    return nodes[: len(leaves)], out


@settings(max_examples=150, deadline=None, derandomize=True)
@given(program=programs())
def test_random_graph_matches_torch(nb, program):
    leaves, steps = program
    our_leaves, ours = run_program(leaves, steps, nb.Value)
    torch_leaves, theirs = run_program(leaves, steps,
                                       lambda x: torch.tensor(x, dtype=torch.float64, requires_grad=True))
    assert_close(ours.data, theirs.item(), "output")

    ours.backward()
    theirs.backward(retain_graph=True)
    assert_close([v.grad for v in our_leaves], torch_grads(torch_leaves), "leaf grads")

    # a second call adds the same gradients again, as torch does
    ours.backward()
    theirs.backward()
    assert_close([v.grad for v in our_leaves], torch_grads(torch_leaves), "leaf grads after a second backward")


# --- fixed cases of the known traps ---------------------------------------------------------------

def test_node_used_twice(nb):
    a = nb.Value(3.0)
    b = a + a
    c = b + b
    c.backward()
    ta = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    tb = ta + ta
    (tb + tb).backward()
    assert (c.data, a.grad) == (12.0, ta.grad.item())


def test_two_outputs_sharing_an_intermediate_accumulate_like_torch(nb):
    def graph(a, b, tanh):
        h = tanh(a * b)
        return h * 2.0, h * -3.0

    a, b = nb.Value(0.9), nb.Value(-1.4)
    first, second = graph(a, b, lambda v: v.tanh())
    first.backward()
    second.backward()
    ta, tb = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (0.9, -1.4))
    tfirst, tsecond = graph(ta, tb, torch.tanh)
    tfirst.backward(retain_graph=True)
    tsecond.backward()
    assert_close([a.grad, b.grad], [ta.grad.item(), tb.grad.item()], "leaf grads")


def test_backward_twice_is_exactly_twice_once(nb):
    rng = np.random.default_rng(7)
    a, b, c = (nb.Value(float(x)) for x in rng.uniform(0.5, 2.0, size=3))
    out = ((a * b).tanh() * c + (a / c).exp()).log()
    out.backward()
    once = [v.grad for v in (a, b, c)]
    out.backward()
    twice = [v.grad for v in (a, b, c)]
    assert_close(twice, [2 * g for g in once], "grads after two calls vs 2 x one call", rtol=1e-12, atol=0)


def test_zero_grad_then_backward_gives_one_call(nb):
    rng = np.random.default_rng(8)
    leaves = [nb.Value(float(x)) for x in rng.uniform(0.5, 2.0, size=3)]
    a, b, c = leaves
    out = (a * b - c).tanh() * a
    out.backward()
    once = [v.grad for v in leaves]
    out.backward()
    nb.zero_grad(leaves)
    assert [v.grad for v in leaves] == [0.0, 0.0, 0.0]
    out.backward()
    assert_close([v.grad for v in leaves], once, "grads after zero_grad and one call", rtol=1e-12, atol=0)


def test_chain_of_100000_ops(nb):
    """x -> x * c + d, 50,000 times: no RecursionError, and dy/dx = c ** 50000 exactly in real arithmetic."""
    steps, c = 50_000, 0.99999
    x = nb.Value(0.5)
    y = x
    for _ in range(steps):
        y = y * c + 0.00001
    assert len(nb.topological_order(y)) == 1 + 4 * steps  # x, then per step the two constants and two results
    y.backward()
    assert_close(x.grad, c ** steps, "dy/dx", rtol=1e-9, atol=0)


def test_mlp_matches_torch(nb):
    model = nb.MLP(3, [5, 4, 1], seed=3)
    rng = np.random.default_rng(9)
    params = model.parameters()
    for p, v in zip(params, rng.uniform(-1.0, 1.0, size=len(params))):
        p.data = float(v)
    x = [0.4, -1.3, 0.8]
    out = model(x)
    out.backward()

    # the same net in torch, reading the parameters in the order parameters() lists them
    values = iter([torch.tensor(p.data, dtype=torch.float64, requires_grad=True) for p in params])
    flat, h = [], torch.tensor(x, dtype=torch.float64)
    for k, layer in enumerate(model.layers):
        rows = []
        for _ in layer.neurons:
            w = [next(values) for _ in range(len(h))]
            b = next(values)
            flat += w + [b]
            rows.append(sum(wi * hi for wi, hi in zip(w, h)) + b)
        h = torch.stack(rows)
        h = torch.tanh(h) if k < len(model.layers) - 1 else h
    grads = torch.autograd.grad(h[0], flat)
    assert_close(out.data, h[0].item(), "output")
    assert_close([p.grad for p in params], [g.item() for g in grads], "parameter grads")


def test_hinge_loss_and_l2_match_torch(nb):
    rng = np.random.default_rng(10)
    scores = rng.uniform(-2.0, 2.0, size=12)
    labels = rng.choice([-1, 1], size=12)
    vs = [nb.Value(float(s)) for s in scores]
    loss = nb.hinge_loss(vs, [int(t) for t in labels]) + nb.l2_penalty(vs, 0.01)
    loss.backward()
    ts = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    tloss = torch.clamp(1 - torch.tensor(labels, dtype=torch.float64) * ts, min=0).mean() + 0.01 * (ts ** 2).sum()
    tloss.backward()
    assert_close(loss.data, tloss.item(), "loss")
    assert_close([v.grad for v in vs], ts.grad.numpy(), "score grads")


# --- each op's local derivative against a central difference --------------------------------------

UNARY_CASES = {
    "tanh+": (lambda v: v.tanh(), math.tanh, 0.8),
    "tanh-": (lambda v: v.tanh(), math.tanh, -1.9),
    "relu+": (lambda v: v.relu(), lambda x: max(0.0, x), 1.3),
    "relu-": (lambda v: v.relu(), lambda x: max(0.0, x), -0.7),
    "exp": (lambda v: v.exp(), math.exp, 0.7),
    "log": (lambda v: v.log(), math.log, 2.9),
    "pow3": (lambda v: v ** 3, lambda x: x ** 3, -1.3),
    "pow0.5": (lambda v: v ** 0.5, lambda x: x ** 0.5, 2.2),
    "pow-2": (lambda v: v ** -2, lambda x: x ** -2, 1.7),
    "neg": (lambda v: -v, lambda x: -x, 1.1),
    "rsub": (lambda v: 2 - v, lambda x: 2 - x, 0.6),
    "rdiv": (lambda v: 2 / v, lambda x: 2 / x, -1.6),
    "div": (lambda v: v / 1.6, lambda x: x / 1.6, 2.7),
}


@pytest.mark.parametrize("case", UNARY_CASES, ids=list(UNARY_CASES))
def test_unary_op_matches_finite_difference(nb, case):
    op, plain, x, h = *UNARY_CASES[case], 1e-6
    v = nb.Value(x)
    out = op(v)
    out.backward()
    central = (plain(x + h) - plain(x - h)) / (2 * h)
    assert_close(out.data, plain(x), "value", rtol=1e-12, atol=0)
    assert_close(v.grad, central, "derivative vs central difference", rtol=1e-6, atol=1e-9)


# --- errors a learner meets ---------------------------------------------------------------------

@pytest.mark.parametrize("call, error", [
    (lambda nb: nb.Value(2.0) ** nb.Value(2.0), TypeError),
    (lambda nb: nb.Value(2.0) ** "2", TypeError),
    (lambda nb: nb.Value(-2.0) ** 0.5, ValueError),
    (lambda nb: nb.Value(0.0).log(), ValueError),
    (lambda nb: nb.Value("1.0"), TypeError),
    (lambda nb: nb.Value(1.0) + [1.0], TypeError),
    (lambda nb: nb.Neuron(3)([1.0, 2.0]), ValueError),
    (lambda nb: nb.hinge_loss([nb.Value(1.0)], [0]), ValueError),
], ids=["pow-Value", "pow-str", "pow-negative-base", "log-0", "Value-str", "add-list", "neuron-length", "hinge-label"])
def test_bad_input_raises(nb, call, error):
    with pytest.raises(error):
        call(nb)
