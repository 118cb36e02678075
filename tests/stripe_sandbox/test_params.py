"""Stripe's bracket form encoding, parsed into nested dicts and lists."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from stripe_sandbox.errors import ApiError
from stripe_sandbox.objects import format_amount
from stripe_sandbox.params import parse_pairs


def test_nested_keys_become_dicts_and_lists():
    body = (
        "mode=payment&line_items[0][price_data][currency]=usd"
        "&line_items[0][price_data][unit_amount]=5000"
        "&line_items[0][price_data][product_data][name]=Lesson&line_items[0][quantity]=1"
        "&line_items[1][quantity]=2&metadata[booking_id]=42&expand[0]=payment_intent"
        "&created[gte]=10&empty="
    )
    parsed = parse_pairs(parse_qsl(body, keep_blank_values=True))
    assert parsed == {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "5000",
                    "product_data": {"name": "Lesson"},
                },
                "quantity": "1",
            },
            {"quantity": "2"},
        ],
        "metadata": {"booking_id": "42"},
        "expand": ["payment_intent"],
        "created": {"gte": "10"},
        "empty": "",
    }


def test_index_order_and_append_syntax():
    parsed = parse_pairs([("a[10]", "x"), ("a[2]", "y"), ("b[]", "1"), ("b[]", "2")])
    assert parsed == {"a": ["y", "x"], "b": ["1", "2"]}


@pytest.mark.parametrize("pairs", [[("a", "1"), ("a[b]", "2")], [("a[b]", "2"), ("a", "1")], [("a[b", "1")]])
def test_conflicting_or_malformed_keys_are_400(pairs):
    with pytest.raises(ApiError) as info:
        parse_pairs(pairs)
    assert info.value.status == 400


def test_format_amount():
    assert format_amount(5000, "usd") == "USD 50.00"
    assert format_amount(5000, "jpy") == "JPY 5000"
    assert format_amount(1005, "kwd") == "KWD 1.005"
