"""Course-wide plots drawn with matplotlib alone (no graphviz or other system binaries).

draw_graph(root)                      a computation graph, laid out in layers by depth
plot_decision_boundary(predict, X, y) a 2-D classifier's regions and its data
"""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection


def graph_nodes(root):
    """Every node reachable from `root` through `_prev`, children before parents (iterative DFS).

    Nodes are told apart by identity, so any object with a `_prev` iterable works.
    """
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            for child in node._prev:
                if id(child) not in seen:
                    stack.append((child, False))
    return order


def graph_depths(order):
    """Depth of each node (by id): 0 for a leaf, else 1 + the deepest child; needs children first."""
    depth = {}
    for node in order:
        child_depths = []
        for child in node._prev:
            if id(child) not in depth:
                raise ValueError("the graph has a cycle: a node is its own ancestor, so it has no layered layout")
            child_depths.append(depth[id(child)])
        depth[id(node)] = 1 + max(child_depths) if child_depths else 0
    return depth


def _node_label(node):
    label = getattr(node, "label", "")
    text = f"data {node.data:.4f}\ngrad {node.grad:.4f}"
    return f"{label}\n{text}" if label else text


def draw_graph(root, max_labels=150):
    """Draw the graph that ends in `root`, leaves on the left, `root` on the right; return the Figure.

    Works on any object with `data`, `grad`, `_prev` (its children) and `_op` (a short string,
    "" for leaves). A value at depth d sits in column 2d; the op that made it is a small circle
    in column 2d - 1, fed by the value's children. Above `max_labels` nodes only markers are drawn.
    """
    for attr in ("data", "grad", "_prev", "_op"):
        if not hasattr(root, attr):
            raise TypeError(f"draw_graph needs a node with data, grad, _prev and _op; "
                            f"{type(root).__name__} has no {attr!r}")
    order = graph_nodes(root)
    depth = graph_depths(order)

    # rows: nodes of one layer stacked in the order the sort met them, centred on y = 0
    layer_size, row = {}, {}
    for node in order:
        d = depth[id(node)]
        row[id(node)] = layer_size.get(d, 0)
        layer_size[d] = row[id(node)] + 1
    pos = {}
    for node in order:
        d = depth[id(node)]
        pos[id(node)] = (2.0 * d, row[id(node)] - (layer_size[d] - 1) / 2)

    edges, op_xy, op_text = [], [], []
    for node in order:
        if not node._prev:
            continue
        x, y = pos[id(node)]
        op = (x - 1.0, y)
        op_xy.append(op)
        op_text.append(str(node._op))
        edges.append((op, (x, y)))
        for child in node._prev:
            edges.append((pos[id(child)], op))

    n_layers = max(layer_size) + 1
    widest = max(layer_size.values())
    labelled = len(order) <= max_labels
    width = min(30.0, max(4.0, 1.7 * n_layers)) if labelled else min(30.0, max(4.0, 0.05 * n_layers))
    height = min(30.0, max(2.0, 0.95 * widest)) if labelled else min(30.0, max(2.0, 0.05 * widest))
    fig, ax = plt.subplots(figsize=(width, height))
    ax.add_collection(LineCollection(edges, colors="0.6", linewidths=0.8, zorder=1))
    xy = np.array([pos[id(node)] for node in order])
    ops = np.array(op_xy).reshape(-1, 2)
    if labelled:
        for node in order:
            ax.text(*pos[id(node)], _node_label(node), ha="center", va="center", fontsize=7, zorder=3,
                    bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.3"))
        for (x, y), text in zip(ops, op_text):
            ax.text(x, y, text, ha="center", va="center", fontsize=8, zorder=3,
                    bbox=dict(boxstyle="circle,pad=0.2", fc="#dde8f5", ec="0.3"))
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, c="0.2", zorder=2)
        if len(ops):
            ax.scatter(ops[:, 0], ops[:, 1], s=4, c="tab:blue", zorder=2)
    ax.set_xlim(-1.0, 2.0 * (n_layers - 1) + 1.0)
    ax.set_ylim(-widest / 2 - 0.5, widest / 2 + 0.5)
    ax.set_axis_off()
    ax.set_title(f"{len(order)} values, {len(op_xy)} ops; leaves left, output right", fontsize=9)
    return fig


def plot_decision_boundary(predict, X, y, resolution=60, padding=0.5, ax=None, title=None):
    """Shade the plane by the class `predict` gives each point and scatter the data on top; return the Figure.

    predict: takes an (N, 2) float array of points and returns (N,) scores (class = score > 0)
             or (N, K) scores (class = argmax).
    X: (N, 2) points; y: (N,) labels, any two or more distinct values.
    resolution: grid points per axis, so predict sees resolution**2 points.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (N, 2) to draw a plane; got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), one label per row of X; got shape {y.shape}")
    if not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2 (grid points per axis); got {resolution!r}")
    xs = np.linspace(X[:, 0].min() - padding, X[:, 0].max() + padding, resolution)
    ys = np.linspace(X[:, 1].min() - padding, X[:, 1].max() + padding, resolution)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (resolution**2, 2)
    scores = np.asarray(predict(grid), dtype=float)
    if scores.shape == (len(grid),):
        region = (scores > 0).astype(int)
    elif scores.ndim == 2 and scores.shape[0] == len(grid):
        region = scores.argmax(axis=1)
    else:
        raise ValueError(f"predict must return ({len(grid)},) or ({len(grid)}, K) scores for "
                         f"{len(grid)} points; got shape {scores.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4))
    else:
        fig = ax.figure
    levels = np.arange(region.max() + 2) - 0.5
    ax.contourf(gx, gy, region.reshape(gx.shape), levels=levels, cmap="coolwarm", alpha=0.3)
    labels = np.unique(y)
    colors = plt.get_cmap("coolwarm")(np.linspace(0, 1, len(labels)))
    for label, color in zip(labels, colors):
        mask = y == label
        ax.scatter(X[mask, 0], X[mask, 1], s=14, color=color, edgecolors="k", linewidths=0.4, label=str(label))
    ax.legend(title="label", fontsize=8)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    if title:
        ax.set_title(title)
    return fig
