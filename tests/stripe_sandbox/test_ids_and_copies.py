"""The sandbox's ids (uniform characters) and the copies of stored objects it answers with."""

from __future__ import annotations

import copy
import string
from collections import Counter

import pytest

from stripe_sandbox import objects
from stripe_sandbox.objects import json_copy, new_id

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


def test_json_copy_is_a_deep_copy_sharing_nothing_mutable():
    stored = {
        "id": "cs_test_1",
        "amount_total": 5000,
        "livemode": False,
        "rate": 1.5,
        "url": None,
        "metadata": {"booking_id": "42"},
        "line_items": [{"price": {"unit_amount": 5000, "tiers": [1, 2]}}],
        "pair": ({"a": 1}, "b"),
        "tags": {"x"},
    }
    made = json_copy(stored)
    assert made == copy.deepcopy(stored)
    assert list(made) == list(stored)  # the same field order: the same JSON text
    made["metadata"]["booking_id"] = "43"
    made["line_items"][0]["price"]["tiers"].append(3)
    made["pair"][0]["a"] = 2
    made["tags"].add("y")
    assert stored["metadata"] == {"booking_id": "42"}
    assert stored["line_items"][0]["price"]["tiers"] == [1, 2]
    assert stored["pair"][0] == {"a": 1} and stored["tags"] == {"x"}


@pytest.mark.parametrize("value", ["text", 3, 2.5, True, None])
def test_json_copy_of_a_plain_value_is_the_value(value):
    assert json_copy(value) is value
