"""llmc_core.plotting: graph drawing without recursion or system binaries, and decision boundaries."""
import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt
import numpy as np
import pytest

from llmc_core.plotting import draw_graph, graph_depths, graph_nodes, plot_decision_boundary


class Node:
    """The least draw_graph needs: data, grad, _prev, _op (no autograd at all)."""

    def __init__(self, data, children=(), op=""):
        self.data, self.grad, self._prev, self._op = data, 0.0, set(children), op


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def small_graph():
    a, b = Node(2.0), Node(-3.0)
    ab = Node(-6.0, (a, b), "*")
    out = Node(-4.0, (ab, a), "+")  # a is used twice
    out.label = "out"
    return out, [a, b, ab]


def chain(n):
    node = Node(0.0)
    for i in range(n - 1):
        node = Node(float(i), (node,), "tanh")
    return node


def test_graph_nodes_puts_children_first_and_each_node_once():
    out, (a, b, ab) = small_graph()
    order = graph_nodes(out)
    position = {id(n): i for i, n in enumerate(order)}
    assert len(order) == len(position) == 4 and order[-1] is out
    assert all(position[id(c)] < position[id(n)] for n in order for c in n._prev)
    assert graph_depths(order) == {id(a): 0, id(b): 0, id(ab): 1, id(out): 2}


def test_draw_small_graph_labels_every_value_and_op():
    out, _ = small_graph()
    fig = draw_graph(out)
    fig.canvas.draw()  # render, so layout problems would raise here
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 4 + 2  # four values, two ops
    assert sorted(t for t in texts if "data" not in t) == ["*", "+"]
    assert any(t.startswith("out\ndata -4.0000") for t in texts)


def test_draw_5000_node_chain_without_recursion():
    fig = draw_graph(chain(5000))
    fig.canvas.draw()
    assert len(fig.axes[0].texts) == 0  # too many nodes for labels: markers only
    assert "5000 values, 4999 ops" in fig.axes[0].get_title()


def test_draw_graph_of_micrograd_values(solutions):
    nb = solutions("01_micrograd")
    x = nb.Value(0.5)
    out = (x * x + x).tanh()
    out.backward()
    fig = draw_graph(out)
    fig.canvas.draw()
    assert len(fig.axes[0].texts) == 4 + 3  # values x, x*x, x*x+x, tanh(...); ops *, +, tanh


def test_draw_graph_rejects_non_nodes_and_cycles():
    with pytest.raises(TypeError, match="_prev"):
        draw_graph(3.0)
    a = Node(1.0)
    b = Node(2.0, (a,), "f")
    a._prev = {b}
    with pytest.raises(ValueError, match="cycle"):
        draw_graph(b)


def test_plot_decision_boundary_shades_by_sign_of_score():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(30, 2))
    y = np.where(X[:, 0] > X[:, 1], 1, -1)
    calls = []

    def predict(points):
        calls.append(points.shape)
        return points[:, 0] - points[:, 1]

    fig = plot_decision_boundary(predict, X, y, resolution=17, title="x0 > x1")
    fig.canvas.draw()
    assert calls == [(17 * 17, 2)]
    ax = fig.axes[0]
    assert ax.get_title() == "x0 > x1"
    assert len(ax.collections) >= 2  # the shaded regions and the two scatters
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["-1", "1"]


def test_plot_decision_boundary_takes_class_scores_and_an_axes():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 2))
    y = rng.integers(0, 3, size=20)
    fig, ax = plt.subplots()
    centers = np.array([[0.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    out = plot_decision_boundary(lambda p: -((p[:, None, :] - centers) ** 2).sum(-1), X, y, ax=ax)
    assert out is fig


@pytest.mark.parametrize("X, y, predict, message", [
    (np.zeros((5, 3)), np.zeros(5), lambda p: p[:, 0], "shape \\(N, 2\\)"),
    (np.zeros((5, 2)), np.zeros(4), lambda p: p[:, 0], "one label per row"),
    (np.zeros((5, 2)), np.zeros(5), lambda p: p[:3, 0], "predict must return"),
], ids=["X-3-columns", "y-too-short", "predict-wrong-shape"])
def test_plot_decision_boundary_rejects_bad_shapes(X, y, predict, message):
    with pytest.raises(ValueError, match=message):
        plot_decision_boundary(predict, X, y)
