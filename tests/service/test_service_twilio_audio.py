"""G.711 mu-law and the speech energy gate, on generated audio."""

from __future__ import annotations

import random
import struct
import sys
import warnings

import pytest

from tether.service.twilio.audio import (
    ULAW_TO_LINEAR,
    EnergyGate,
    Throttle,
    dbfs,
    decode,
    encode,
    tone,
)

FRAME = 160  # 20 ms at 8 kHz: one Twilio media frame


def frames(audio: bytes) -> list[bytes]:
    return [audio[i : i + FRAME] for i in range(0, len(audio), FRAME)]


def noise(seconds: float, level_dbfs: float, seed: int = 7) -> bytes:
    """Gaussian noise at about ``level_dbfs`` RMS, mu-law encoded (a quiet phone line)."""
    rng = random.Random(seed)
    sigma = 32768 * 10 ** (level_dbfs / 20)
    return encode(round(rng.gauss(0, sigma)) for _ in range(round(seconds * 8000)))


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="audioop is gone from 3.13 on")
def test_tables_match_the_standard_librarys_g711_for_every_value() -> None:
    """Decode of all 256 bytes and encode of all 65536 samples equal audioop's G.711."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    expected = struct.unpack("<256h", audioop.ulaw2lin(bytes(range(256)), 2))
    assert expected == ULAW_TO_LINEAR
    samples = range(-32768, 32768)
    packed = struct.pack(f"<{len(samples)}h", *samples)
    assert encode(samples) == audioop.lin2ulaw(packed, 2)


def test_decode_inverts_encode_within_g711_quantisation() -> None:
    """A sample survives encode then decode to within its segment's step (about 3 %)."""
    for sample in (0, 5, -5, 1000, -1000, 12345, -12345, 32000):
        (back,) = decode(encode([sample]))
        assert abs(back - sample) <= max(8, abs(sample) * 0.035), (sample, back)


def test_tone_has_the_level_asked_for() -> None:
    """A generated sine measures its requested RMS level in dBFS (within 0.5 dB)."""
    for level in (-10.0, -20.0, -35.0):
        assert dbfs(tone(440, 0.1, level)) == pytest.approx(level, abs=0.5)
    assert dbfs(b"\xff" * FRAME) == float("-inf")  # mu-law digital silence


def test_speech_level_opens_the_gate_and_silence_does_not() -> None:
    """Every frame of a -20 dBFS sine is speech; digital silence and -55 dBFS noise never are."""
    gate = EnergyGate()
    assert all(gate.feed(f) for f in frames(tone(300, 1.0, -20)))
    assert not any(EnergyGate().feed(f) for f in frames(b"\xff" * 8000))
    assert not any(EnergyGate().feed(f) for f in frames(noise(1.0, -55)))


def test_the_gate_holds_open_for_its_hangover_then_closes() -> None:
    """After speech, silence keeps the gate open for the hangover (0.3 s), then closes it."""
    gate = EnergyGate(hangover=0.3)
    assert gate.feed(tone(300, 0.02, -20))
    quiet = [gate.feed(f) for f in frames(b"\xff" * 8000)]
    assert quiet[:15] == [True] * 15  # 15 frames x 20 ms = the 0.3 s hangover
    assert not any(quiet[15:])


def test_the_threshold_decides_between_levels() -> None:
    """A -45 dBFS tone is silence at the default -40 dBFS threshold, speech at -50."""
    quiet_voice = tone(300, 0.02, -45)
    assert not EnergyGate().feed(quiet_voice)
    assert EnergyGate(threshold_dbfs=-50).feed(quiet_voice)


def test_gate_refuses_nonsense_settings() -> None:
    """A threshold at or above full scale, or a negative hangover, is a ValueError."""
    with pytest.raises(ValueError, match="threshold"):
        EnergyGate(threshold_dbfs=0)
    with pytest.raises(ValueError, match="hangover"):
        EnergyGate(hangover=-1)


def test_throttle_lets_one_through_per_interval() -> None:
    """ready() is True at most once per interval of the caller's clock."""
    throttle = Throttle(1.0)
    assert [throttle.ready(t) for t in (0.0, 0.5, 0.99, 1.0, 1.5, 2.2)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]
