"""Lessons 05 and 09: every exercise's first hint is a nudge; check(..., hint=2) adds the probe's formula or API."""
import importlib

import pytest

from llmc_core.checking import format_results, run_checks
from llmc_core.course import lesson_by_prefix
from llmc_core.exercises import exercises, hint_tiers, probes_for

PREFIXES = ["torch_backward", "modern"]
# A wrong answer to one exercise of each lesson, and that exercise.
WRONG = {
    "torch_backward": ("torch_backward/saved_bytes", {"saved_tensor_bytes": lambda step, alive=(): 0}),
    "modern": ("modern/rms_norm", {"rms_norm": lambda x, weight=None, eps=1e-6: x}),
}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_exercise_has_a_nudge_then_the_probe_hint(prefix):
    lesson = lesson_by_prefix(prefix)
    module = importlib.import_module(lesson.probe_module)
    probes = probes_for(lesson)
    assert set(module.NUDGES) == set(exercises(probes))
    for p in probes:
        assert hint_tiers(p) == (module.NUDGES[p.exercise], p.hint), p.id


@pytest.mark.parametrize("prefix", PREFIXES)
def test_uses_names_earlier_exercises_of_the_lesson(prefix):
    lesson = lesson_by_prefix(prefix)
    order = list(exercises(probes_for(lesson)))  # probes_for also rejects a later or unknown exercise
    for exercise, used in importlib.import_module(lesson.probe_module).USES.items():
        assert exercise in order and all(order.index(u) < order.index(exercise) for u in used)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_formula_comes_only_with_hint_2(prefix):
    exercise, namespace = WRONG[prefix]
    nudge = importlib.import_module(lesson_by_prefix(prefix).probe_module).NUDGES[exercise]
    first = format_results(run_checks(exercise, namespace))
    second = format_results(run_checks(exercise, namespace, hint_level=2))
    formulas = [p.hint for p in probes_for(lesson_by_prefix(prefix)) if p.exercise == exercise]
    assert f"hint: {nudge}" in first and not any(f in first for f in formulas)
    assert f'check("{exercise}", hint=2)' in first
    assert f"hint: {nudge}" in second and any(f"hint 2: {f}" in second for f in formulas)
