"""Parsing of Stripe's form encoding (``a[b][0][c]=v``) and typed parameter access."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import invalid, missing_param

_SUBKEY = re.compile(r"\[([^\[\]]*)\]")


def split_key(key: str) -> list[str]:
    """``line_items[0][quantity]`` -> ``["line_items", "0", "quantity"]``."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    tail = bracket + rest
    parts = _SUBKEY.findall(tail)
    if "".join(f"[{p}]" for p in parts) != tail:
        raise invalid(f"Invalid parameter name: {key}", key)
    return [head, *parts]


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Build nested dicts/lists from form pairs the way Stripe reads them."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = split_key(key)
        node = root
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, key, parts[depth + 1])
        last = parts[-1]
        if last == "":
            last = str(len(node))
        if isinstance(node.get(last), dict):
            raise invalid(f"Invalid value for {key}: expected a hash.", key)
        node[last] = value
    return _listify(root)


def _child(node: dict[str, Any], part: str, key: str, next_part: str) -> dict[str, Any]:
    if part == "":
        part = str(len(node))
    child = node.setdefault(part, {})
    if not isinstance(child, dict):
        raise invalid(f"Invalid hash for {key}.", key)
    return child


def _listify(value: Any) -> Any:
    """Turn dicts whose keys are all array indexes into lists."""
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def check_known(params: Mapping[str, Any], known: Iterable[str], prefix: str = "") -> None:
    """Name what an operation acts on (``known``); refuses nothing.

    Every /v1 request's names were checked against the pinned SDK's parameter types before the
    operation ran (schema.check_request), so a name here that ``known`` lacks is one Stripe
    accepts that the sandbox does not act on (``customer_account``, ``individual``, ...): it is
    accepted and ignored, as Stripe would accept it, rather than refused as unknown."""
    del params, known, prefix


def get_str(
    params: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    max_len: int | None = None,
    param: str | None = None,
) -> str | None:
    """A string parameter (None when absent)."""
    param = param or name
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(param)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {param}", param)
    if max_len is not None and len(value) > max_len:
        raise invalid(
            f"Invalid string: {value[:40]}...; must be at most {max_len} characters",
            param,
            "string_too_long",
        )
    return value


def get_int(
    params: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    param: str | None = None,
) -> int | None:
    """An integer parameter (None when absent)."""
    param = param or name
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(param)
        return None
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise invalid(f"Invalid integer: {value}", param)
    number = int(value)
    if minimum is not None and number < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param)
    if maximum is not None and number > maximum:
        raise invalid(f"This value must be less than or equal to {maximum}.", param)
    return number


def get_bool(params: Mapping[str, Any], name: str) -> bool | None:
    """A boolean parameter (None when absent)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if value not in ("true", "false"):
        raise invalid(f"Invalid boolean: {value}", name)
    return value == "true"


def get_dict(params: Mapping[str, Any], name: str, param: str | None = None) -> dict[str, Any]:
    """A hash parameter ({} when absent)."""
    param = param or name
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid hash: {param}", param)
    return value


def get_list(params: Mapping[str, Any], name: str, param: str | None = None) -> list[Any]:
    """An array parameter ([] when absent)."""
    param = param or name
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise invalid(f"Invalid array: {param}", param)
    return value


def get_metadata(params: Mapping[str, Any], name: str = "metadata", param: str | None = None) -> dict[str, str]:
    """Metadata with Stripe's limits: 50 keys, key <= 40 chars, value <= 500 chars."""
    param = param or name
    raw = get_dict(params, name, param)
    if len(raw) > 50:
        raise invalid("Metadata can have at most 50 keys.", param)
    metadata: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise invalid(f"Invalid value for {param}[{key}]: must be a string.", f"{param}[{key}]")
        if len(key) > 40:
            raise invalid(f"Metadata keys must be at most 40 characters: {key}", param)
        if len(value) > 500:
            raise invalid(f"Metadata values must be at most 500 characters ({key}).", f"{param}[{key}]")
        if value != "":
            metadata[key] = value
    return metadata


def get_expand(params: Mapping[str, Any]) -> list[str]:
    """The ``expand`` paths of a request."""
    paths = get_list(params, "expand")
    if not all(isinstance(p, str) for p in paths):
        raise invalid("Invalid array: expand", "expand")
    return paths


def get_created_filter(params: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``created`` as an int or a ``{gt,gte,lt,lte}`` hash -> [(op, value)]."""
    value = params.get("created")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [("=", get_int(params, "created"))]  # type: ignore[list-item]
    if not isinstance(value, dict):
        raise invalid("Invalid hash: created", "created")
    ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    check_known(value, ops, "created")
    return [(ops[k], get_int(value, k, param=f"created[{k}]")) for k in value]  # type: ignore[misc]
