"""Plain data: conversion, the JSON round trip, and comparison messages."""
import math

import numpy as np
import pytest

from llmc_core.plain import compare, decode, encode, to_plain


def test_to_plain_turns_numpy_scalars_and_tuples_into_python():
    got = to_plain({"a": (np.float32(1.5), np.int64(2), np.bool_(True)), "b": None})
    assert got == {"a": [1.5, 2, True], "b": None}
    assert [type(v) for v in got["a"]] == [float, int, bool]


@pytest.mark.parametrize("bad", [object(), {1: 2}, np.array(["a"]), {"x": [1, {2}]}],
                         ids=["object", "int-key", "str-array", "nested-set"])
def test_to_plain_rejects_anything_else(bad):
    with pytest.raises(TypeError, match="plain"):
        to_plain(bad)


def test_an_object_that_claims_equality_is_not_plain():
    class Liar:
        def __eq__(self, other):
            return True
    with pytest.raises(TypeError):
        to_plain(Liar())


def test_encode_decode_round_trip_keeps_arrays_dtypes_and_shapes():
    data = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": [1, 2.5, "s", False], "e": np.zeros((0, 4))}
    back = decode(encode(data))
    assert back["w"].dtype == np.float32 and back["w"].shape == (2, 3)
    np.testing.assert_array_equal(back["w"], data["w"])
    assert back["e"].shape == (0, 4) and back["n"] == [1, 2.5, "s", False]


def test_decode_refuses_non_plain_arrays():
    with pytest.raises(ValueError):
        decode({"__ndarray__": [1], "dtype": "object", "shape": [1]})


@pytest.mark.parametrize("expected,got,rtol,atol", [
    (1.0, 1.0 + 1e-9, 1e-6, 0.0),
    (3, 3.0, 0.0, 0.0),
    (float("nan"), float("nan"), 0.0, 0.0),
    (np.array([1.0, 2.0], np.float32), np.array([1.0, 2.0 + 1e-7], np.float32), 1e-6, 0.0),
    ({"a": [1, "x", True]}, {"a": [1, "x", True]}, 0.0, 0.0),
], ids=["float-within-rtol", "int-vs-float", "nan", "array", "nested"])
def test_compare_accepts_matches(expected, got, rtol, atol):
    assert compare(expected, got, rtol, atol) is None


@pytest.mark.parametrize("expected,got,message", [
    (1.0, 1.1, "result: expected 1, got 1.1"),
    ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}, "result['a']['b'][1]: expected 2, got 3"),
    (True, 1, "expected a bool, got a int"),
    ([1, 2], [1], "expected a list of length 2, got length 1"),
    ({"a": 1}, {"b": 1}, "keys differ (missing ['a'], unexpected ['b'])"),
    (np.zeros((2, 3)), np.zeros((3, 2)), "expected shape (2, 3), got (3, 2)"),
    (np.zeros(3, np.float32), np.zeros(3, np.float64), "expected dtype float32, got float64"),
    ("ValueError", "no error", "expected 'ValueError', got 'no error'"),
], ids=["float", "nested-path", "bool-vs-int", "length", "keys", "shape", "dtype", "string"])
def test_compare_names_the_first_difference(expected, got, message):
    assert message in compare(expected, got, 1e-6, 0.0)


def test_array_difference_reports_count_index_and_errors():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    got = np.array([[1.0, 2.0], [3.5, 4.0]])
    message = compare(expected, got, 1e-6, 0.0)
    assert "1 of 4 values differ; first at index (1, 0) (expected 3, got 3.5)" in message
    assert "max abs error 0.5" in message and "max rel error 0.125" in message


def test_hidden_comparison_does_not_reveal_the_expected_value():
    message = compare({"x": 41.25}, {"x": 7.0}, 1e-6, 0.0, reveal=False)
    assert "41.25" not in message and "result['x']" in message
    array_message = compare(np.array([41.25]), np.array([7.0]), 1e-6, 0.0, reveal=False)
    assert "41.25" not in array_message and "1 of 1 values differ" in array_message


def test_infinities_must_match_in_sign():
    assert compare(math.inf, math.inf, 0, 0) is None
    assert compare(math.inf, -math.inf, 0, 0) is not None
