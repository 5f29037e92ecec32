"""Identifiers: session id minting, user id allowlist, log redaction."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest

from tether.core.ids import log_ref, new_session_id, validate_session_id, validate_user_id
from tether.errors import InvalidInput

VALID_USER_IDS = [
    "a",
    "alice",
    "Alice_Smith-01",
    "alice@example.com",
    "a.b",
    ".hidden",
    "trailing.",
    "...",
    "_",
    "-",
    "@",
    "0",
    "x" * 128,
    "A-Za-z0-9_.@",
]

INVALID_USER_IDS = [
    "",
    ".",
    "..",
    "x" * 129,
    "a/b",
    "/",
    "../etc",
    "a\\b",
    "a\x00b",
    "\x00",
    "alice\x00",
    "alice\n",
    "\nalice",
    "a b",
    " alice",
    "alice ",
    "a\tb",
    "a:b",
    "a+b",
    "a%2e",
    "a*",
    "~alice",
    "\u0430dmin",  # Cyrillic a
    "\uff41lice",  # fullwidth a
    "\u212a",  # Kelvin sign, folds to K
    "\u0131",  # dotless i
    "caf\u00e9",
    "\u0661\u0662",  # Arabic-Indic digits
    "alice\u200b",  # zero-width space
    "\u2024",  # one dot leader, looks like '.'
    "\uff0e\uff0e",  # fullwidth dots
]


@pytest.mark.parametrize("value", VALID_USER_IDS)
def test_allowlisted_user_ids_are_accepted_unchanged(value: str) -> None:
    """ASCII letters, digits and _ . @ - of length 1-128 are returned as-is."""
    assert validate_user_id(value) == value


@pytest.mark.parametrize("value", INVALID_USER_IDS, ids=ascii)
def test_user_ids_outside_the_allowlist_are_rejected(value: str) -> None:
    """Empty, '.', '..', 129 chars, separators, NUL, whitespace and look-alikes raise."""
    with pytest.raises(InvalidInput, match="invalid user id"):
        validate_user_id(value)


@pytest.mark.parametrize("value", [None, 1, 1.5, b"alice", ["alice"], object()], ids=repr)
def test_non_string_user_ids_are_rejected(value: object) -> None:
    """A user id that is not a str raises InvalidInput rather than TypeError."""
    with pytest.raises(InvalidInput):
        validate_user_id(value)


def test_new_session_id_is_32_lowercase_hex() -> None:
    """A minted session id is exactly 32 lowercase hex characters."""
    for _ in range(100):
        assert re.fullmatch(r"[0-9a-f]{32}", new_session_id())


def test_new_session_ids_are_unique_over_10k() -> None:
    """10,000 minted session ids are all distinct."""
    ids = {new_session_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_minted_session_ids_pass_validation() -> None:
    """validate_session_id accepts what new_session_id mints."""
    sid = new_session_id()
    assert validate_session_id(sid) == sid


@pytest.mark.parametrize(
    "value",
    ["", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "0" * 31 + "\n", None, 123, b"0" * 32],
    ids=repr,
)
def test_malformed_session_ids_are_rejected(value: object) -> None:
    """Wrong length, uppercase, non-hex, trailing newline or non-str session ids raise."""
    with pytest.raises(InvalidInput):
        validate_session_id(value)


def test_log_ref_is_stable_within_a_process() -> None:
    """The same session id always gives the same log reference in one process."""
    sid = new_session_id()
    assert log_ref(sid) == log_ref(sid)
    assert log_ref(str(sid)) == log_ref(sid)


def test_log_ref_differs_for_different_ids() -> None:
    """Distinct session ids get distinct log references (10k ids, no collision)."""
    ids = [new_session_id() for _ in range(10_000)]
    assert len({log_ref(sid) for sid in ids}) == len(ids)


def test_log_ref_never_contains_the_id_or_a_chunk_of_it() -> None:
    """A log reference reveals neither the id nor any 8-character piece of it."""
    for _ in range(1_000):
        sid = new_session_id()
        ref = log_ref(sid)
        assert sid not in ref
        assert all(sid[i : i + 8] not in ref for i in range(len(sid) - 7))


def test_log_ref_is_salted_not_a_plain_hash() -> None:
    """A log reference is not any unkeyed hash of the id, so it cannot be precomputed."""
    sid = new_session_id()
    ref = log_ref(sid)
    plain = [
        hashlib.blake2b(sid.encode(), digest_size=6).hexdigest(),
        hashlib.sha256(sid.encode()).hexdigest()[: len(ref)],
        hashlib.md5(sid.encode()).hexdigest()[: len(ref)],
    ]
    assert ref not in plain


def test_log_ref_differs_across_processes() -> None:
    """Another process gives the same id a different reference (per-process salt)."""
    sid = "0123456789abcdef0123456789abcdef"
    code = f"from tether.core.ids import log_ref; print(log_ref({sid!r}))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other
    assert other != log_ref(sid)
