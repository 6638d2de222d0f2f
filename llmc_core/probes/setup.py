"""Probes of lesson 00, setup: the warm-up exercise, a dot product."""
from llmc_core.exercises import FLOAT64, probe, raised

# Which earlier exercises each exercise runs: none, the lesson has one.
USES = {}
# The first hint of a failing check names the concept; the probe's own hint comes on request (check(..., hint=2)).
NUDGES = {
    "setup/dot": "The dot product pairs up the elements of the two vectors.",
}


# --- dot -----------------------------------------------------------------------------------------

@probe("setup/dot", hint="Multiply matching elements and add the products up.")
def small_integers(nb):
    return nb.dot([1, 2, 3], [4, 5, 6])


@probe("setup/dot", **FLOAT64, hint="Every pair of elements counts, the last one too.")
def floats_with_signs(nb):
    return nb.dot([0.5, -1.5, 2.0, 3.25], [-2.0, 4.0, 0.125, 1.0])


@probe("setup/dot", hint=("The sum of no products is 0.",))
def empty_vectors(nb):
    return nb.dot([], [])


@probe("setup/dot", hint=("Compare the lengths first and raise ValueError when they differ.",))
def lengths_differ(nb):
    return raised(nb.dot, [1, 2, 3], [1, 2])
