"""benchmarks/recipe_ablation.py's statistics: Student's t tail against published critical values, Welch's test
by hand."""
import importlib.util
import math

import pytest

from llmc_core.course import REPO_DIR
from llmc_core.modern import RECIPES

spec = importlib.util.spec_from_file_location("recipe_ablation", REPO_DIR / "benchmarks" / "recipe_ablation.py")
ablation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablation)


# two-sided critical values t such that P(|T| >= t) = p, from the standard t table
@pytest.mark.parametrize("t, df, p", [(2.228, 10, 0.05), (2.776, 4, 0.05), (3.169, 10, 0.01), (12.706, 1, 0.05),
                                      (1.960, 1e6, 0.05), (0.0, 5, 1.0)],
                         ids=["df10", "df4", "df10-1%", "df1", "normal", "zero"])
def test_student_t_tail_matches_the_table(t, df, p):
    assert ablation.student_t_two_sided(t, df) == pytest.approx(p, abs=2e-4)


def test_welch_by_hand():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    va, vb = 1.0 / 3, (20.0 / 3) / 4  # sample variances over n
    t, df, p = ablation.welch_t_test(a, b)
    assert t == pytest.approx((2.0 - 5.0) / math.sqrt(va + vb), rel=1e-12)
    assert df == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 3), rel=1e-12)
    assert p == pytest.approx(ablation.student_t_two_sided(t, df), rel=1e-12) and 0.05 < p < 0.2


def test_every_idea_is_removed_once():
    variants = ablation.variants()
    assert variants["gpt2"] == RECIPES["gpt2"] and variants["modern"] == RECIPES["modern"]
    modern, gpt2 = RECIPES["modern"], RECIPES["gpt2"]
    changed = [[k for k in modern if v[k] != modern[k]] for name, v in variants.items() if name.startswith("- ")]
    assert sorted(k for c in changed for k in c) == sorted(k for k in modern if modern[k] != gpt2[k])
    assert all(len(c) == 1 for c in changed)
