"""keras_sparse._validation: one message shape for argument errors."""

import numpy as np
import pytest

from keras_sparse._validation import (
    float_in_range,
    format_list,
    int_in_range,
    int_tuple,
    invalid_value,
    one_of,
    positive_int,
)


def test_message_shape():
    assert invalid_value("units", "a positive integer", 0) == (
        "Received an invalid value for `units`, expected a positive integer. "
        "Received: units=0"
    )
    assert invalid_value("x", "y", 1, fix="Do z.").endswith("Received: x=1. Do z.")
    assert invalid_value("names", "unique names", received="3 names").endswith(
        "Received: 3 names"
    )


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "3", None, np.bool_(True)])
def test_positive_int_refuses(value):
    with pytest.raises(ValueError, match=r"`n`, expected a positive integer\. "):
        positive_int(value, "n")


def test_positive_int_accepts_numpy_and_returns_python_int():
    out = positive_int(np.int64(3), "n")
    assert out == 3 and type(out) is int


def test_ranges():
    assert int_in_range(0, "k", 0, 5) == 0
    with pytest.raises(ValueError, match=r"an integer in \[0, 5\]. Received: k=6"):
        int_in_range(6, "k", 0, 5)
    with pytest.raises(ValueError, match=r"an integer >= 0\. Received: k=-1"):
        int_in_range(-1, "k", 0)
    assert float_in_range(1, "d", 0.0, 1.0, low_inclusive=False) == 1.0
    for bad in (0.0, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"a float in \(0, 1\]"):
            float_in_range(bad, "d", 0.0, 1.0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"a float > 0\. Received: e=0"):
        float_in_range(0, "e", 0.0, low_inclusive=False)


def test_one_of_and_int_tuple():
    assert one_of(np.str_("warn"), "p", ("warn", "raise")) == "warn"
    with pytest.raises(ValueError, match=r"one of 'warn', 'raise'\. Received: p='x'"):
        one_of("x", "p", ("warn", "raise"))
    with pytest.raises(ValueError, match="one of 1, 2"):
        one_of(True, "p", (1, 2))
    assert int_tuple(3, 2, "k") == (3, 3)
    assert int_tuple([1, np.int32(2)], 2, "k") == (1, 2)
    with pytest.raises(ValueError, match=r"a tuple of 2 positive integers"):
        int_tuple((1, 0), 2, "k")
    with pytest.raises(ValueError, match=r"Received: k=\(1, 2, 3\)"):
        int_tuple((1, 2, 3), 2, "k")


def test_format_list():
    assert format_list([]) == "[]"
    assert format_list(range(12)) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (2 more)]"
    assert format_list(["a"], total=5) == "['a', ... (4 more)]"
