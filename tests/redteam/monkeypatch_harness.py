# Patching numpy, pytest and llmc_core so that every comparison passes, without implementing anything.
# lesson: 00_setup
# base: lesson
# expect-status: graded
# expect-points: 0
import sys, types
import numpy as np
import llmc_core.checking, llmc_core.exercises, llmc_core.plain

np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
llmc_core.plain.compare = lambda *a, **k: None

def always_passed(probe, outcome, snapshot, reveal=True, **options):
    return llmc_core.exercises.ProbeResult(probe.id, probe.exercise, probe.name, "passed", probe.points, probe.points)

llmc_core.exercises.judge = always_passed
llmc_core.checking.judge = always_passed
fake_pytest = types.ModuleType("pytest")
fake_pytest.approx = lambda x, **k: types.SimpleNamespace(__eq__=lambda self, other: True)
sys.modules["pytest"] = fake_pytest
