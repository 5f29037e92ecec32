"""Policy: the numbers behind the three clocks, validated at construction."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.core.policy import Policy
from tether.errors import ConfigError, PolicyError

FIELDS = ("idle_timeout", "warn_before", "max_duration", "presence_timeout")

BAD_VALUES = [
    -1,
    -0.5,
    -1e-9,
    math.nan,
    math.inf,
    -math.inf,
    True,
    False,
    None,
    "10",
    b"10",
    Decimal("10"),
    Fraction(10),
    [10],
    complex(10, 0),
]


def test_defaults_match_the_design_table() -> None:
    """The default policy is idle 600 s, warn 120 s, max 1800 s, presence 60 s."""
    policy = Policy()
    assert (policy.idle_timeout, policy.warn_before, policy.max_duration) == (600, 120, 1800)
    assert policy.presence_timeout == 60


def test_policy_is_frozen() -> None:
    """A Policy cannot be mutated after validation (it is shared between sessions)."""
    policy = Policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.idle_timeout = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_a_bad_value_is_rejected_naming_its_field(field: str, value: object) -> None:
    """Negative, non-finite, bool and non-number values raise PolicyError naming the field."""
    with pytest.raises(PolicyError) as info:
        Policy(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)


def test_policy_error_is_a_config_error() -> None:
    """PolicyError sits under ConfigError, so start-up config handling catches it."""
    with pytest.raises(ConfigError):
        Policy(idle_timeout=-1)


@pytest.mark.parametrize("field", ["idle_timeout", "max_duration"])
def test_zero_idle_or_max_duration_is_rejected(field: str) -> None:
    """idle_timeout == 0 and max_duration == 0 are invalid, named by their field."""
    with pytest.raises(PolicyError) as info:
        Policy(**{field: 0, "warn_before": 0})
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("warn", [10.0, 10, 11, 1e6])
def test_warn_before_at_or_above_idle_timeout_is_rejected(warn: float) -> None:
    """warn_before >= idle_timeout raises PolicyError on warn_before, naming idle_timeout."""
    with pytest.raises(PolicyError) as info:
        Policy(idle_timeout=10, warn_before=warn, max_duration=1e7)
    assert info.value.field == "warn_before"
    assert "warn_before" in str(info.value)
    assert "idle_timeout" in str(info.value)


@pytest.mark.parametrize("warn", [10.0, 10, 11])
def test_warn_before_at_or_above_max_duration_is_rejected(warn: float) -> None:
    """warn_before >= max_duration raises PolicyError on warn_before, naming max_duration."""
    with pytest.raises(PolicyError) as info:
        Policy(idle_timeout=100, warn_before=warn, max_duration=10)
    assert info.value.field == "warn_before"
    assert "warn_before" in str(info.value)
    assert "max_duration" in str(info.value)


def test_warn_before_zero_is_valid_even_with_tiny_timeouts() -> None:
    """warn_before == 0 disables warnings, so it is valid for any positive timeouts."""
    policy = Policy(idle_timeout=1e-6, warn_before=0, max_duration=1e-6, presence_timeout=0)
    assert policy.warn_before == 0


def test_just_below_the_limits_is_valid() -> None:
    """A warn_before strictly below both timeouts and a zero presence timeout are valid."""
    warn = math.nextafter(10.0, 0.0)
    policy = Policy(idle_timeout=10, warn_before=warn, max_duration=10, presence_timeout=0)
    assert policy.warn_before == warn


def test_ints_are_accepted_as_seconds() -> None:
    """Plain ints are valid numbers of seconds."""
    policy = Policy(idle_timeout=30, warn_before=5, max_duration=60, presence_timeout=0)
    assert policy == Policy(30.0, 5.0, 60.0, 0.0)


_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 5.0]),
)


def _valid(idle: float, warn: float, maximum: float, presence: float) -> bool:
    values = (idle, warn, maximum, presence)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        return False
    if idle <= 0 or maximum <= 0:
        return False
    return warn == 0 or (warn < idle and warn < maximum)


@settings(max_examples=300, deadline=None)
@given(idle=_number, warn=_number, maximum=_number, presence=_number)
def test_policy_is_accepted_exactly_when_the_rules_allow(
    idle: float, warn: float, maximum: float, presence: float
) -> None:
    """Construction succeeds iff every value is finite and >= 0, timeouts > 0, warn below both."""
    values = {
        "idle_timeout": idle,
        "warn_before": warn,
        "max_duration": maximum,
        "presence_timeout": presence,
    }
    if _valid(idle, warn, maximum, presence):
        Policy(**values)
        return
    with pytest.raises(PolicyError) as info:
        Policy(**values)
    assert info.value.field in FIELDS
    assert info.value.field in str(info.value)
