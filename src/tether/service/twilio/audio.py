"""G.711 mu-law and a speech energy gate; sans-I/O (no socket, no clock).

Twilio streams a call's audio as 8 kHz mono mu-law, 160 bytes per 20 ms
frame. To tell someone speaking from a quiet line, each frame is decoded to
16-bit linear samples, its RMS level compared with a threshold in dBFS, and
an open gate held for a short hangover, so the pauses between words do not
count as silence.

Why tables and not a library: the standard library's ``audioop`` is
deprecated (PEP 594; importing it warns on 3.11 and 3.12) and removed in
3.13; its maintained fork ``audioop-lts`` installs only on 3.13 and later,
while tether supports 3.11; the ``g711`` package on PyPI has had no release
since 2021 and pulls in numpy, which tether does not otherwise need. G.711
mu-law is a fixed 256-entry mapping, so the decoder is that table, built
once from the ITU-T G.711 formula exactly as ``audioop`` computes it (the
tests compare every value with ``audioop`` where it still exists). The
energy of a frame is then one table lookup and one addition per byte.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

FULL_SCALE = 32768.0
"""dBFS reference: the magnitude of a full-scale 16-bit sample."""
SAMPLE_RATE = 8000
_BIAS = 0x84
_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _decode(byte: int) -> int:
    u = ~byte & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return _BIAS - t if u & 0x80 else t - _BIAS


def _encode14(pcm: int) -> int:
    """One 14-bit sample to mu-law, as G.711 (and ``audioop``) define it."""
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + (_BIAS >> 2)
    for seg, end in enumerate(_SEG_END):
        if pcm <= end:
            return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask


ULAW_TO_LINEAR: tuple[int, ...] = tuple(_decode(b) for b in range(256))
"""Each mu-law byte's 16-bit linear sample (range -32124..32124)."""
_SQUARES: tuple[int, ...] = tuple(s * s for s in ULAW_TO_LINEAR)
_LINEAR14_TO_ULAW = bytes(_encode14(v) for v in range(-8192, 8192))


def decode(frame: bytes) -> list[int]:
    """The 16-bit linear samples of mu-law ``frame``."""
    table = ULAW_TO_LINEAR
    return [table[b] for b in frame]


def encode(samples: Iterable[int]) -> bytes:
    """Mu-law bytes for 16-bit linear ``samples`` (clipped to the 16-bit range)."""
    table = _LINEAR14_TO_ULAW
    return bytes(table[(max(-32768, min(32767, s)) >> 2) + 8192] for s in samples)


def rms(frame: bytes) -> float:
    """Root-mean-square level of mu-law ``frame`` on the 16-bit scale (0 for an empty frame)."""
    if not frame:
        return 0.0
    return math.sqrt(sum(map(_SQUARES.__getitem__, frame)) / len(frame))


def dbfs(frame: bytes) -> float:
    """The level of mu-law ``frame`` in dBFS (``-inf`` for digital silence)."""
    level = rms(frame)
    return 20.0 * math.log10(level / FULL_SCALE) if level > 0 else -math.inf


def tone(frequency: float, seconds: float, level_dbfs: float = -20.0) -> bytes:
    """A sine at ``level_dbfs`` (its RMS), mu-law encoded: a beep to play, or test speech."""
    amplitude = FULL_SCALE * 10 ** (level_dbfs / 20.0) * math.sqrt(2.0)
    count = round(seconds * SAMPLE_RATE)
    step = 2.0 * math.pi * frequency / SAMPLE_RATE
    return encode(round(amplitude * math.sin(step * n)) for n in range(count))


class EnergyGate:
    """Says, frame by frame, whether someone is speaking.

    A frame whose RMS level reaches ``threshold_dbfs`` opens the gate; it
    stays open for ``hangover`` seconds of audio after the last such frame,
    so the short pauses inside speech keep counting. Time is counted in
    samples, so the gate needs no clock. The default threshold, -40 dBFS,
    sits between telephone speech (roughly -30 to -15 dBFS) and a quiet
    line's noise (below -50 dBFS).
    """

    __slots__ = ("_hangover", "_held", "_threshold")

    def __init__(self, threshold_dbfs: float = -40.0, hangover: float = 0.3) -> None:
        if not threshold_dbfs < 0:
            raise ValueError("threshold_dbfs must be below 0 dBFS")
        if hangover < 0:
            raise ValueError("hangover must not be negative")
        level = FULL_SCALE * 10 ** (threshold_dbfs / 20.0)
        self._threshold = level * level  # compared with the mean square: no sqrt per frame
        self._hangover = round(hangover * SAMPLE_RATE)
        self._held = 0

    def feed(self, frame: bytes) -> bool:
        """Whether the gate is open after mu-law ``frame`` (speech, or its hangover)."""
        if not frame:
            return self._held > 0
        mean_square = sum(map(_SQUARES.__getitem__, frame)) / len(frame)
        if mean_square >= self._threshold:
            self._held = self._hangover + len(frame)
            return True
        self._held = max(0, self._held - len(frame))
        return self._held > 0


class Throttle:
    """At most one ``True`` per ``interval`` seconds of the caller's clock."""

    __slots__ = ("_interval", "_next")

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._next = -math.inf

    def ready(self, now: float) -> bool:
        """``True`` (and the interval starts again) if ``interval`` has passed since the last."""
        if now < self._next:
            return False
        self._next = now + self._interval
        return True
