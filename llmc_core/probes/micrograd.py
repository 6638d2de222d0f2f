"""Probes of lesson 01, micrograd: the learner's Value, backward and tiny neural net on fixed inputs.

Op probes call `out._backward()` once with an upstream grad that is not 1, on children whose
grads already hold a non-zero amount, so a missing chain-rule factor or an `=` instead of `+=`
shows. Composed ops and the nets are backpropagated by `_sweep` below, not by the learner's
`backward()`, so each exercise is graded on its own as far as it can be: the backward, neuron,
MLP and loss probes still run the learner's ops, and their hints say so. Every input is non-zero
and not 1.
"""
import math

import numpy as np

from llmc_core.exercises import FLOAT64, probe, raised
from llmc_core.plotting import graph_nodes

OPS = ("micrograd/value_ops", "micrograd/pow", "micrograd/more_ops", "micrograd/tanh", "micrograd/relu",
       "micrograd/exp_log")
# Which earlier exercises each exercise runs; a probe with its own `uses=` says more precisely.
USES = {
    "micrograd/more_ops": ("micrograd/value_ops", "micrograd/pow"),  # -, / and reflected ops are built from + * **
    "micrograd/backward": OPS + ("micrograd/topo_order",),
    "micrograd/neuron": ("micrograd/value_ops", "micrograd/tanh"),
    "micrograd/mlp": ("micrograd/neuron",),
    "micrograd/loss": ("micrograd/value_ops", "micrograd/more_ops", "micrograd/relu"),
}
# The first hint of a failing check names the concept; the probe's own hint (the formula) comes on request.
NUDGES = {
    "micrograd/finite_difference": "A derivative is a slope: the change in f over a small change "
                                   "in x.",
    "micrograd/value_ops": "Each op's _backward applies the chain rule: local derivative times "
                           "out.grad, accumulated into each child.",
    "micrograd/pow": "The power rule, applied in _backward with the chain rule.",
    "micrograd/more_ops": "These ops can be compositions of the ones you already have.",
    "micrograd/tanh": "The derivative of tanh can be written with tanh's own output.",
    "micrograd/relu": "relu is a switch: the gradient passes where the input was positive.",
    "micrograd/exp_log": "Use the derivatives of exp and log, each times out.grad.",
    "micrograd/topo_order": "A topological order lists every node after all of its children "
                            "(a depth-first search).",
    "micrograd/backward": "Backpropagation visits nodes from the output back, "
                          "each after everything that uses it.",
    "micrograd/zero_grad": "Gradients accumulate until something resets them.",
    "micrograd/neuron": "A neuron is a weighted sum plus a bias, then a nonlinearity.",
    "micrograd/mlp": "An MLP is layers of neurons, each layer's outputs feeding the next.",
    "micrograd/loss": "The hinge loss and the L2 penalty are built from the Value ops.",
}
# numerical_derivative's default step is h = 1e-5: a central difference is off by ~h**2 (1e-10),
# a forward difference by ~h f''(x) / 2 (1e-5 relative), which CENTRAL_DIFFERENCE rejects.
CENTRAL_DIFFERENCE = {"rtol": 1e-7, "atol": 1e-9}
# With a large step (h = 0.1) both differences are exact formulas of x and h: only rounding may differ.
LARGE_STEP = {"rtol": 1e-9, "atol": 1e-9}
PRESET_GRAD = 0.25  # what a child's grad holds before a probe's backward step: += must keep it


def _sweep(root, upstream):
    """Backpropagate `upstream` from `root` through the learner's `_backward` closures."""
    root.grad = upstream
    for node in reversed(graph_nodes(root)):
        node._backward()


def _leaves(nb, *xs):
    """Values for the numbers `xs`, each grad preset to PRESET_GRAD."""
    values = [nb.Value(x) for x in xs]
    for v in values:
        v.grad = PRESET_GRAD
    return values


def _one_step(out, upstream=-1.5):
    """Run only the op's own backward step with an upstream grad that is neither 0 nor 1."""
    out.grad = upstream
    out._backward()


# --- finite_difference ---------------------------------------------------------------------------

DERIVATIVE_HINT = ("Evaluate f at equal steps on both sides of x and divide the change by the "
                   "distance between them.")


@probe("micrograd/finite_difference", **CENTRAL_DIFFERENCE, hint=DERIVATIVE_HINT)
def cubic_at_1_3(nb):
    return nb.numerical_derivative(lambda x: x**3 - 2 * x, 1.3)


@probe("micrograd/finite_difference", **CENTRAL_DIFFERENCE, hint=DERIVATIVE_HINT)
def sine_at_2_has_negative_slope(nb):
    return nb.numerical_derivative(math.sin, 2.0)


@probe("micrograd/finite_difference", **LARGE_STEP,
       hint=("Use the step h you are given, not a fixed one; a large h shows which formula you "
             "used.",))
def cubic_with_large_step_h(nb):
    return nb.numerical_derivative(lambda x: x**3, 0.7, h=0.1)


@probe("micrograd/finite_difference",
       hint=("Check h before using it, and raise the error the docstring names.",))
def step_h_must_be_positive(nb):
    return {"zero": raised(nb.numerical_derivative, math.sin, 1.0, h=0.0),
            "negative": raised(nb.numerical_derivative, math.sin, 1.0, h=-1e-3)}


# --- value_ops -----------------------------------------------------------------------------------

@probe("micrograd/value_ops", **FLOAT64,
       hint="The local derivative of a + b is 1 for each input; multiply it by out.grad and add "
            "(+=) it to each child's grad.")
def add_two_values(nb):
    """a, b = Value(-1.7), Value(2.3), grads preset to 0.25; out = a + b; out._backward() once with out.grad = -1.5"""
    a, b = _leaves(nb, -1.7, 2.3)
    out = a + b
    _one_step(out)
    return {"data": out.data, "a.grad": a.grad, "b.grad": b.grad}


@probe("micrograd/value_ops", **FLOAT64,
       hint="d(a*b)/da is b and d(a*b)/db is a; each is multiplied by out.grad and added (+=) to "
            "the child's grad.")
def mul_two_values(nb):
    """a, b = Value(-1.7), Value(2.3), grads preset to 0.25; out = a * b; out._backward() once with out.grad = -1.5"""
    a, b = _leaves(nb, -1.7, 2.3)
    out = a * b
    _one_step(out)
    return {"data": out.data, "a.grad": a.grad, "b.grad": b.grad}


@probe("micrograd/value_ops", **FLOAT64,
       hint="A plain number on the right must be wrapped into a Value before you use .data.")
def add_and_mul_plain_number(nb):
    """a, b = Value(0.6), Value(-2.2), grads preset to 0.25; s = a + 3.5, p = b * -0.8;
    each _backward() once with grad 2.5"""
    a, b = _leaves(nb, 0.6, -2.2)
    s, p = a + 3.5, b * -0.8
    _one_step(s, 2.5)
    _one_step(p, 2.5)
    return {"sum": s.data, "product": p.data, "a.grad": a.grad, "b.grad": b.grad}


@probe("micrograd/value_ops", **FLOAT64,
       hint="In a * a both children are the same node: two += into one grad, "
            "so an = loses one of them.")
def same_node_on_both_sides(nb):
    """a = Value(-1.3), grad preset to 0.25; s = a + a (_backward with 0.7), p = a * a (_backward with -1.5)"""
    a, = _leaves(nb, -1.3)
    s, p = a + a, a * a
    _one_step(s, 0.7)
    _one_step(p, -1.5)
    return {"a+a": s.data, "a*a": p.data, "a.grad": a.grad}


@probe("micrograd/value_ops",
       hint=("Pass the two inputs as the new Value's children, so that backward can find them.",))
def result_remembers_its_children(nb):
    a, b = nb.Value(1.5), nb.Value(-0.5)
    return {"a+b has a and b": {id(a), id(b)} == {id(c) for c in (a + b)._prev},
            "a*b has a and b": {id(a), id(b)} == {id(c) for c in (a * b)._prev}}


# --- pow -----------------------------------------------------------------------------------------

POW_HINT = "d(x**k)/dx is k * x**(k - 1); times out.grad, added to x.grad."


@probe("micrograd/pow", **FLOAT64, hint=POW_HINT, cases={
    "pow_int_exponent_of_negative_base": (-1.3, 3),
    "pow_fractional_exponent": (2.2, 0.5),
    "pow_negative_exponent": (1.7, -2),
})
def pow_step(nb, base, exponent):
    """x = Value({base}), grad preset to 0.25; out = x ** {exponent}; out._backward() once with out.grad = -1.5"""
    x, = _leaves(nb, base)
    out = x ** exponent
    _one_step(out)
    return {"data": out.data, "x.grad": x.grad}


@probe("micrograd/pow",
       hint=("Check the exponent's type first: only int and float are allowed, "
             "a Value or a string raises TypeError.",))
def pow_rejects_non_number_exponent(nb):
    x = nb.Value(2.0)
    return {"Value exponent": raised(lambda: x ** nb.Value(2.0)),
            "str exponent": raised(lambda: x ** "2")}


@probe("micrograd/pow",
       hint=("A negative base with a non-whole exponent has no real result: "
             "raise the error the docstring names.",))
def pow_negative_base_fractional_exponent_raises(nb):
    return raised(lambda: nb.Value(-2.0) ** 0.5)


# --- more_ops ------------------------------------------------------------------------------------

COMPOSED_HINT = "Write it with the ops you already have (+, *, **) so its backward comes for free."


def _composed(nb, make, *xs, upstream=1.25):
    leaves = _leaves(nb, *xs)
    out = make(*leaves)
    _sweep(out, upstream)
    return {"data": out.data, "grads": [v.grad for v in leaves]}


@probe("micrograd/more_ops", **FLOAT64, hint=COMPOSED_HINT, cases={
    "negation": ("-a", lambda a: -a, [1.9]),
    "subtract_two_values": ("a - b", lambda a, b: a - b, [-0.4, 2.6]),
    "divide_two_values": ("a / b", lambda a, b: a / b, [-1.1, 2.3]),
    "subtract_and_divide_by_plain_number": ("(a - 0.6) / 1.6", lambda a: (a - 0.6) / 1.6, [2.7]),
})
def composed_op(nb, expression, make, xs):
    """Values {xs} as a (and b), grads preset to 0.25; out = {expression}; backpropagated from out.grad = 1.25"""
    return _composed(nb, make, *xs)


@probe("micrograd/more_ops", **FLOAT64,
       hint="2 + a calls a.__radd__(2): Python asks the right operand when the left one (an int) "
            "gives up.")
def reflected_add_and_mul(nb):
    """a = Value(-0.9), grad preset to 0.25; out = 2 + 3 * a; backpropagated from out.grad = 1.25"""
    return _composed(nb, lambda a: 2 + 3 * a, -0.9)


@probe("micrograd/more_ops", **FLOAT64,
       hint="2 - a is a.__rsub__(2): mind the order, it is other - self.")
def reflected_sub(nb):
    """a = Value(1.4), grad preset to 0.25; out = 2 - a; backpropagated from out.grad = 1.25"""
    return _composed(nb, lambda a: 2 - a, 1.4)


@probe("micrograd/more_ops", **FLOAT64,
       hint="2 / a is a.__rtruediv__(2): mind the order, it is other / self.")
def reflected_div(nb):
    """a = Value(-1.6), grad preset to 0.25; out = 2 / a; backpropagated from out.grad = 1.25"""
    return _composed(nb, lambda a: 2 / a, -1.6)


# --- tanh ----------------------------------------------------------------------------------------

def _unary(nb, op, x, upstream=-1.5):
    v, = _leaves(nb, x)
    out = getattr(v, op)()
    _one_step(out, upstream)
    return {"data": out.data, "x.grad": v.grad}


TANH_HINT = "d tanh(x)/dx = 1 - tanh(x)**2: reuse the output value you computed."


@probe("micrograd/tanh", **FLOAT64, hint=TANH_HINT, cases={
    "tanh_positive_input": 0.8,
    "tanh_negative_input": -1.9,
})
def tanh_step(nb, x):
    """x = Value({x}), grad preset to 0.25; out = x.tanh(); out._backward() once with out.grad = -1.5"""
    return _unary(nb, "tanh", x)


@probe("micrograd/tanh", **FLOAT64,
       hint=("exp(2x) overflows for large x: compute tanh with math.tanh, "
             "which saturates at ±1.",))
def tanh_large_input_does_not_overflow(nb):
    return {"+400": _unary(nb, "tanh", 400.0), "-400": _unary(nb, "tanh", -400.0)}


# --- relu ----------------------------------------------------------------------------------------

RELU_HINT = "relu passes out.grad through where its input was positive and nothing elsewhere."


@probe("micrograd/relu", **FLOAT64, hint=RELU_HINT, cases={
    "relu_positive_input": 1.3,
    "relu_negative_input": -0.7,
})
def relu_step(nb, x):
    """x = Value({x}), grad preset to 0.25; out = x.relu(); out._backward() once with out.grad = -1.5"""
    return _unary(nb, "relu", x)


@probe("micrograd/relu", **FLOAT64,
       hint=("At exactly 0 the docstring fixes the gradient; compare the input with 0 strictly.",))
def relu_at_zero(nb):
    """x = Value(0.0), grad preset to 0.25; out = x.relu(); out._backward() once with out.grad = -1.5"""
    return _unary(nb, "relu", 0.0)


# --- exp_log -------------------------------------------------------------------------------------

@probe("micrograd/exp_log", **FLOAT64, hint="d exp(x)/dx = exp(x): reuse the output value.")
def exp_positive_and_negative_input(nb):
    """x = Value(0.7) and Value(-2.1), grads preset to 0.25; out = x.exp(); out._backward() once with out.grad = -1.5"""
    return {"0.7": _unary(nb, "exp", 0.7), "-2.1": _unary(nb, "exp", -2.1)}


@probe("micrograd/exp_log", **FLOAT64, hint="d log(x)/dx = 1/x, with the input x, not the output.")
def log_of_positive_input(nb):
    """x = Value(2.9) and Value(0.05), grads preset to 0.25; out = x.log(); out._backward() once with out.grad = -1.5"""
    return {"2.9": _unary(nb, "log", 2.9), "0.05": _unary(nb, "log", 0.05)}


@probe("micrograd/exp_log",
       hint=("Check the input before calling math.log, and raise the error the docstring names.",))
def log_of_non_positive_input_raises(nb):
    return {"0": raised(lambda: nb.Value(0.0).log()), "-1.5": raised(lambda: nb.Value(-1.5).log())}


# --- topo_order ----------------------------------------------------------------------------------

def _order_facts(root, order):
    """Order-independent facts about a claimed topological order (valid orders differ)."""
    position = {id(node): i for i, node in enumerate(order)}
    reachable = graph_nodes(root)
    return {
        "length": len(order),
        "each node once": len(position) == len(order),
        "same nodes as the graph": set(position) == {id(n) for n in reachable},
        "root last": bool(order) and order[-1] is root,
        "children before parents": all(id(c) in position and position[id(c)] < position[id(n)]
                                       for n in order for c in n._prev),
    }


def _node(nb, data, *children):
    # built with the constructor alone, so this exercise does not depend on the op exercises
    return nb.Value(data, tuple(children), "f" if children else "")


TOPO_HINT = ("Visit a node's children before appending the node, and remember which nodes "
             "you have visited.")


@probe("micrograd/topo_order", hint=TOPO_HINT)
def reused_nodes_appear_once(nb):
    a = _node(nb, 1.5)
    b = _node(nb, 2.5, a, a)
    c = _node(nb, 3.5, b, a)
    d = _node(nb, 4.5, c, b, _node(nb, 0.5))
    return _order_facts(d, nb.topological_order(d))


@probe("micrograd/topo_order", hint=TOPO_HINT)
def diamonds_in_a_layered_graph(nb):
    rng = np.random.default_rng(11)
    layers = [[_node(nb, 1.0 + i) for i in range(4)]]
    for depth in range(5):
        below = layers[-1]
        layers.append([_node(nb, float(depth), *(below[j] for j in rng.choice(4, size=2, replace=False)))
                       for _ in range(4)])
    root = _node(nb, 9.0, *layers[-1])
    return _order_facts(root, nb.topological_order(root))


@probe("micrograd/topo_order", hint=("A leaf on its own is a graph of one node.",))
def single_leaf(nb):
    leaf = nb.Value(2.0)
    return _order_facts(leaf, nb.topological_order(leaf))


@probe("micrograd/topo_order",
       hint=("Recursion stops at about 1,000 nested calls: keep your own stack (a list) of "
             "nodes to visit.",))
def chain_of_20000_nodes_without_recursion(nb):
    node = nb.Value(0.5)
    for i in range(20000):
        node = _node(nb, float(i), node)
    return _order_facts(node, nb.topological_order(node))


# --- backward ------------------------------------------------------------------------------------

def _expression(nb):
    """A small expression with every op kind; the leaves are seeded, non-zero and not 1."""
    rng = np.random.default_rng(5)
    a, b, c, d = (nb.Value(float(x)) for x in rng.uniform(0.5, 2.0, size=4) * np.array([1, -1, 1, -1]))
    h = (a * b + c).tanh()
    out = h * d - a / c + (b ** 2).exp() * 0.1 + (c + 3.0).log() - (h * a + 2.0).relu()
    return out, [a, b, c, d]


BACKWARD_HINT = ("Seed the output's grad, then call each node's _backward in reverse topological "
                 "order. This uses every op: if an op exercise fails, fix that first.")


@probe("micrograd/backward", **FLOAT64, uses=OPS + ("micrograd/topo_order",), hint=BACKWARD_HINT)
def expression_with_every_op(nb):
    """h = tanh(a*b + c); out = h*d - a/c + exp(b**2)*0.1 + log(c + 3) - relu(h*a + 2),
    a..d seeded in ±[0.5, 2]; out.backward()"""
    out, leaves = _expression(nb)
    out.backward()
    return {"out": out.data, "out.grad": out.grad, "leaf grads": [v.grad for v in leaves]}


@probe("micrograd/backward", **FLOAT64, uses=("micrograd/value_ops", "micrograd/topo_order"),
       hint="b = a + a; c = b + b: each node must be processed once, "
            "after everything that uses it.")
def node_used_twice(nb):
    """a = Value(-1.5); b = a + a; c = b + b; c.backward()"""
    a = nb.Value(-1.5)
    b = a + a
    c = b + b
    c.backward()
    return {"c": c.data, "a.grad": a.grad, "b.grad": b.grad}


@probe("micrograd/backward", **FLOAT64,
       uses=("micrograd/value_ops", "micrograd/tanh", "micrograd/topo_order"),
       hint="A node used by two later nodes collects grad from both before passing it on.")
def intermediate_used_by_two_nodes(nb):
    """x = Value(0.7); h = tanh(x * -1.3); out = h*h + h*2.5; out.backward()"""
    x = nb.Value(0.7)
    h = (x * -1.3).tanh()
    out = h * h + h * 2.5
    out.backward()
    return {"out": out.data, "x.grad": x.grad, "h.grad": h.grad}


@probe("micrograd/backward", **FLOAT64, uses=OPS + ("micrograd/topo_order",),
       hint="Leaf grads accumulate across calls; intermediate grads must start from 0 at each "
            "call.")
def backward_called_twice_doubles_leaf_grads(nb):
    """the every-op expression; out.backward() twice"""
    out, leaves = _expression(nb)
    out.backward()
    once = [v.grad for v in leaves]
    out.backward()
    return {"after one call": once, "after two calls": [v.grad for v in leaves]}


@probe("micrograd/backward", **FLOAT64,
       uses=("micrograd/value_ops", "micrograd/tanh", "micrograd/topo_order"),
       hint="A leaf's grad may already hold something: backward adds to it and does not "
            "overwrite it.")
def accumulates_into_existing_leaf_grads(nb):
    """a, b = Value(1.2), Value(-0.6), grads preset to 0.25; out = tanh(a*b) * 1.7; out.backward()"""
    a, b = _leaves(nb, 1.2, -0.6)
    out = (a * b).tanh() * 1.7
    out.backward()
    return {"a.grad": a.grad, "b.grad": b.grad}


@probe("micrograd/backward", **FLOAT64,
       uses=("micrograd/value_ops", "micrograd/tanh", "micrograd/topo_order"),
       hint="When a second output is backpropagated, the grad the first one left in a shared "
            "intermediate must not count again.")
def two_outputs_share_an_intermediate(nb):
    """h = tanh(Value(0.9) * Value(-1.4)); (h*2).backward(), then (h*-3).backward()"""
    a, b = nb.Value(0.9), nb.Value(-1.4)
    h = (a * b).tanh()
    first, second = h * 2.0, h * -3.0
    first.backward()
    second.backward()
    return {"a.grad": a.grad, "b.grad": b.grad}


@probe("micrograd/backward", **FLOAT64, uses=("micrograd/value_ops", "micrograd/topo_order"),
       hint=("Recursion stops at about 1,000 nested calls: sort with your own stack, "
             "then sweep with a loop.",))
def chain_of_20000_ops_without_recursion(nb):
    """y = x = Value(0.9); 10,000 times y = y*1.0001 + 0.0001; y.backward()"""
    x = nb.Value(0.9)
    y = x
    for i in range(10000):
        y = (y * 1.0001) + 0.0001  # two ops per step, 20,000 in all
    y.backward()
    return {"y": y.data, "x.grad": x.grad}


# --- zero_grad -----------------------------------------------------------------------------------

@probe("micrograd/zero_grad", **FLOAT64, hint="Set .grad of every Value you are given back to 0.")
def zero_grad_resets_every_value(nb):
    """Values 1.5, -0.5, 2.5 with grads 0.25, -3.0, 0.25; zero_grad(that list)"""
    values = _leaves(nb, 1.5, -0.5, 2.5)
    values[1].grad = -3.0
    nb.zero_grad(values)
    return [v.grad for v in values]


@probe("micrograd/zero_grad", **FLOAT64,
       hint=("Loop over what you are given once; it may be a generator, not a list.",))
def zero_grad_takes_a_generator(nb):
    """Values 1.5, -0.5 with grads 0.25; zero_grad(a generator over them)"""
    values = _leaves(nb, 1.5, -0.5)
    nb.zero_grad(v for v in values)
    return [v.grad for v in values]


@probe("micrograd/zero_grad", **FLOAT64, uses=OPS + ("micrograd/topo_order", "micrograd/backward"),
       hint="After zero_grad, one backward must give the grads of a single call. "
            "If zero_grad clears every leaf and this still fails, your backward lets "
            "intermediate grads of earlier calls count again.")
def backward_after_zero_grad_matches_one_call(nb):
    """the every-op expression: backward() twice, zero_grad(leaves), backward() once more"""
    out, leaves = _expression(nb)
    out.backward()
    out.backward()
    nb.zero_grad(leaves)
    out.backward()
    return [v.grad for v in leaves]


# --- neuron --------------------------------------------------------------------------------------

def _set_parameters(nb, params, seed):
    """Overwrite every parameter with a seeded value in ±[0.3, 1.2], so no weight is 0 or ±1."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.3, 1.2, size=len(params)) * rng.choice([-1.0, 1.0], size=len(params))
    for p, x in zip(params, values):
        p.data, p.grad = float(x), 0.0


def _neuron(nb, nin, seed, **kwargs):
    n = nb.Neuron(nin, **kwargs)
    rng = np.random.default_rng(seed)
    n.w = [nb.Value(float(x)) for x in rng.uniform(-1.2, 1.2, size=nin)]
    n.b = nb.Value(float(rng.uniform(-0.5, 0.5)))
    return n


NEURON_HINT = ("Weighted sum of the inputs plus the bias, then tanh when nonlin is true (and "
               "tanh itself must pass its check).")


@probe("micrograd/neuron", **FLOAT64, hint=NEURON_HINT)
def neuron_tanh_output_and_grads(nb):
    n = _neuron(nb, 3, seed=21)
    out = n([0.5, -1.5, 2.0])
    _sweep(out, 1.0)
    return {"out": out.data, "w.grad": [w.grad for w in n.w], "b.grad": n.b.grad}


@probe("micrograd/neuron", **FLOAT64,
       hint="With nonlin=False the neuron returns the weighted sum plus bias, with no tanh.")
def neuron_linear_output_and_grads(nb):
    n = _neuron(nb, 4, seed=22, nonlin=False)
    out = n([1.5, -0.5, 0.25, -2.0])
    _sweep(out, -0.8)
    return {"out": out.data, "w.grad": [w.grad for w in n.w], "b.grad": n.b.grad}


@probe("micrograd/neuron", **FLOAT64,
       hint="Inputs may be Values; their grads come from the weights they meet.")
def neuron_gives_grads_to_value_inputs(nb):
    n = _neuron(nb, 2, seed=23)
    xs = [nb.Value(0.8), nb.Value(-1.1)]
    out = n(xs)
    _sweep(out, 1.0)
    return {"out": out.data, "x.grad": [x.grad for x in xs]}


@probe("micrograd/neuron", uses=(),
       hint="parameters() returns the weight Values themselves, in order, then the bias.")
def neuron_parameters_are_the_weights_then_the_bias(nb):
    n = _neuron(nb, 3, seed=24)
    params = n.parameters()
    return {"count": len(params), "same objects, in order": [p is q for p, q in zip(params, n.w + [n.b])]}


# --- mlp -----------------------------------------------------------------------------------------

@probe("micrograd/mlp",
       hint="parameters() of an MLP lists every layer's parameters, first layer first.")
def mlp_parameter_count(nb):
    """MLP(2, [16, 16, 1]) and MLP(3, [4, 2])"""
    return {"2-16-16-1": len(nb.MLP(2, [16, 16, 1]).parameters()), "3-4-2": len(nb.MLP(3, [4, 2]).parameters())}


@probe("micrograd/mlp", **FLOAT64,
       hint="Feed each layer's outputs to the next; with one output neuron return that Value, "
            "not a list.")
def mlp_output_with_probe_weights(nb):
    model = nb.MLP(3, [4, 4, 1])
    _set_parameters(nb, model.parameters(), seed=31)
    out = model([0.9, -0.4, 1.7])
    return {"is a Value": isinstance(out, nb.Value), "out": out.data}


@probe("micrograd/mlp", **FLOAT64,
       hint="The last layer is linear; every parameter's grad flows through your neurons' ops, "
            "so check those exercises first.")
def mlp_grads_with_probe_weights(nb):
    model = nb.MLP(3, [4, 4, 1])
    params = model.parameters()
    _set_parameters(nb, params, seed=32)
    out = model([-1.2, 0.3, 0.8])
    _sweep(out, 1.0)
    return np.array([p.grad for p in params])


@probe("micrograd/mlp", **FLOAT64,
       hint="With several output neurons the MLP returns a list of Values.")
def mlp_with_two_outputs(nb):
    model = nb.MLP(3, [4, 2])
    _set_parameters(nb, model.parameters(), seed=33)
    out = model([0.2, 1.1, -0.6])
    return [o.data for o in out]


# --- loss ----------------------------------------------------------------------------------------

def _scores(nb, seed, n):
    rng = np.random.default_rng(seed)
    return [nb.Value(float(x)) for x in rng.uniform(-2.0, 2.0, size=n)]


HINGE_HINT = "Each example contributes relu(1 - label * score); average over the examples."


@probe("micrograd/loss", **FLOAT64, hint=HINGE_HINT)
def hinge_loss_and_score_grads(nb):
    scores = _scores(nb, 41, 8)
    labels = [1, -1, -1, 1, 1, -1, 1, -1]
    loss = nb.hinge_loss(scores, labels)
    _sweep(loss, 1.0)
    return {"loss": loss.data, "score grads": [s.grad for s in scores]}


@probe("micrograd/loss", uses=(),
       hint=("Check the inputs first and raise the error the docstring names.",))
def hinge_loss_rejects_bad_labels(nb):
    """labels [1, 0, -1]; 3 scores with 2 labels; no scores at all"""
    scores = _scores(nb, 42, 3)
    return {"label 0": raised(nb.hinge_loss, scores, [1, 0, -1]),
            "lengths differ": raised(nb.hinge_loss, scores, [1, -1]),
            "empty": raised(nb.hinge_loss, [], [])}


@probe("micrograd/loss", **FLOAT64, hint="alpha times the sum of the squares of the parameters.")
def l2_penalty_and_grads(nb):
    params = _scores(nb, 43, 6)
    penalty = nb.l2_penalty(params, 0.01)
    _sweep(penalty, 1.0)
    return {"penalty": penalty.data, "grads": [p.grad for p in params]}


@probe("micrograd/loss", uses=(),
       hint=("A negative alpha would reward large weights: raise the error the docstring names.",))
def l2_penalty_rejects_negative_alpha(nb):
    """alpha = -0.1"""
    return raised(nb.l2_penalty, _scores(nb, 44, 2), -0.1)
