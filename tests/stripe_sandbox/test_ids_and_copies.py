"""The sandbox's ids (uniform characters) and the copies of stored objects it answers with."""

from __future__ import annotations

import string
from collections import Counter

from stripe_sandbox import objects
from stripe_sandbox.objects import new_id

ALPHABET = string.ascii_letters + string.digits


def test_ids_have_the_prefix_length_and_alphabet():
    for length in (1, 14, 24, 58):
        made = new_id("cs_test_", length)
        assert made.startswith("cs_test_") and len(made) == len("cs_test_") + length
        assert set(made[len("cs_test_") :]) <= set(ALPHABET)


def test_id_characters_are_uniform_over_the_alphabet():
    counts = Counter("".join(new_id("", 50) for _ in range(4000)))  # 200,000 characters
    assert set(counts) == set(ALPHABET)
    expected = 200_000 / len(ALPHABET)  # ~3,226; one standard deviation is ~56
    assert all(0.8 * expected < n < 1.2 * expected for n in counts.values())


def test_random_bytes_that_would_bias_the_id_are_skipped(monkeypatch):
    reads: list[int] = []

    def token_bytes(n: int) -> bytes:
        reads.append(n)
        # 248..255 would favour the alphabet's first 8 letters: they must be dropped
        return bytes([248, 255, 0, 61, 62, 247] + [250] * (n - 6)) if len(reads) == 1 else bytes([1] * n)

    monkeypatch.setattr(objects.secrets, "token_bytes", token_bytes)
    assert new_id("x_", 8) == "x_" + ALPHABET[0] + ALPHABET[61] + ALPHABET[0] + ALPHABET[247 % 62] + ALPHABET[1] * 4
    assert len(reads) == 2  # the first read had only four usable bytes
