"""Timing defaults that fit what was given: no default ever conflicts with a chosen value.

A deployment sets some of a session's timings (``TETHER_IDLE_TIMEOUT=60s``)
and leaves the others to their defaults. Fixed defaults would conflict with
short chosen values (a 2-minute warning before a 60-second idle end), so
:func:`fit_timings` derives every timing that was not given from the ones
that were:

* ``max_duration``: ``max(30m, 3 * idle_timeout)``, so a long idle timeout
  the user chose can still fire before the cap;
* ``warn_before``: ``min(2m, shortest warned clock / 5)``, the warned clocks
  being ``idle_timeout`` and ``max_duration``;
* ``heartbeat_interval``: ``min(25s, presence_timeout / 2)`` (``25s`` when the
  presence timeout is ``0``), so a client heartbeating at the advertised pace
  is never ended ``client_gone`` between two beats.

With nothing given these give the documented defaults (10m, 2m, 30m, 60s, 25s).
:func:`timing_conflicts` then lists what is still inconsistent; by
construction every conflict involves at least one given value, so only
settings the user chose can be refused. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

MAX_IDLE_PERIODS = 3.0
"""A defaulted max duration is at least this many idle timeouts."""
WARN_SHARE = 5.0
"""A defaulted warning lead is at most this share (one fifth) of the shortest warned clock."""
BEATS_PER_PRESENCE = 2.0
"""A defaulted heartbeat interval fits this many beats into the presence timeout."""


@dataclass(frozen=True, slots=True)
class Timings:
    """A session's timings in seconds; the field defaults are the documented defaults."""

    idle_timeout: float = 600.0
    warn_before: float = 120.0
    max_duration: float = 1800.0
    presence_timeout: float = 60.0
    heartbeat_interval: float = 25.0


DEFAULTS = Timings()
TIMING_FIELDS = tuple(f.name for f in fields(Timings))


@dataclass(frozen=True, slots=True)
class Conflict:
    """``setting`` must be shorter than ``bound`` (both :class:`Timings` field names)."""

    setting: str
    bound: str


def fit_timings(given: Mapping[str, float]) -> Timings:
    """Every timing: the ``given`` ones as they are, each other one fitted to them.

    ``given`` maps :class:`Timings` field names to seconds; other keys are an
    error (``KeyError`` names them), so a typo cannot silently fall back to a default.
    """
    unknown = set(given) - set(TIMING_FIELDS)
    if unknown:
        raise KeyError(f"not a timing: {', '.join(sorted(unknown))}")
    idle = given.get("idle_timeout", DEFAULTS.idle_timeout)
    longest = given.get("max_duration", max(DEFAULTS.max_duration, MAX_IDLE_PERIODS * idle))
    warn = given.get("warn_before", min(DEFAULTS.warn_before, min(idle, longest) / WARN_SHARE))
    presence = given.get("presence_timeout", DEFAULTS.presence_timeout)
    beat = DEFAULTS.heartbeat_interval
    if presence > 0:
        beat = min(beat, presence / BEATS_PER_PRESENCE)
    return Timings(
        idle_timeout=idle,
        warn_before=warn,
        max_duration=longest,
        presence_timeout=presence,
        heartbeat_interval=given.get("heartbeat_interval", beat),
    )


def timing_conflicts(timings: Timings) -> list[Conflict]:
    """What in ``timings`` contradicts itself, in a fixed order (empty: consistent).

    A warning must come before the end it announces; a heartbeat must come
    before the presence clock it feeds runs out. Values that are invalid on
    their own (a zero idle timeout) are :class:`~tether.core.policy.Policy`'s to refuse.
    """
    out = []
    if timings.warn_before and timings.warn_before >= timings.idle_timeout:
        out.append(Conflict("warn_before", "idle_timeout"))
    if timings.warn_before and timings.warn_before >= timings.max_duration:
        out.append(Conflict("warn_before", "max_duration"))
    if timings.presence_timeout and timings.heartbeat_interval >= timings.presence_timeout:
        out.append(Conflict("heartbeat_interval", "presence_timeout"))
    return out
