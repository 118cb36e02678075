"""Every /v1 request checked against the pinned ``stripe`` SDK's generated parameter types.

The SDK's ``stripe.params`` TypedDicts are generated from Stripe's OpenAPI description of the
pinned API version, so they say what that version accepts: the names, their nesting, their
types, the allowed values (``Literal``) and the required keys (no ``NotRequired``). This module
reads them at run time (``typing.get_type_hints`` / ``get_args``) instead of copying them, so a
new SDK pin moves the sandbox with it. What a request fails is answered as Stripe answers
(https://docs.stripe.com/api/errors): ``invalid_request_error`` with a ``code`` from
https://docs.stripe.com/error-codes where Stripe documents one, the offending ``param`` in
bracket form (``a[b][0][c]``) and a ``doc_url`` for the code.

Two things of the generated types are read with care:

- the SDK widens most enums to ``Literal[...] | str`` so that an old SDK still parses a value a
  newer API adds; the API itself accepts only the listed values, so the ``str`` arm is dropped
  whenever a ``Literal`` sits beside it (``ui_mode=hosted`` is refused, ``hosted_page`` accepted);
- ``Literal[""]`` in a union marks a parameter that an empty string unsets; elsewhere an empty
  string is Stripe's ``parameter_invalid_empty`` ("You passed an empty string for ...").

Which resource each route answers with is listed here too, for ``expand``: a path may name
only fields the SDK types as expandable (``str | Object``, i.e. OpenAPI's
``x-expandableFields``) or includable lists (``ListObject``, e.g. a session's ``line_items``).
"""

from __future__ import annotations

import functools
import re
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, NotRequired, Required, Union

import stripe
import stripe.params as sp
import stripe.params.checkout as spc
from stripe._list_object import ListObject
from stripe._request_options import RequestOptions
from stripe._stripe_object import StripeObject
from typing_extensions import is_typeddict

from .constraints import check_constraints
from .errors import ApiError, invalid, missing_param, unknown_param

# What the request options of the SDK's TypedDicts carry goes in headers, never in the body.
_OPTION_KEYS = frozenset(RequestOptions.__annotations__)
# The names the request options' annotations use (inherited by every params TypedDict, so
# evaluated with them); StripeContext is imported by the SDK for type checkers only.
_OPTION_NAMES = {**vars(sys.modules[RequestOptions.__module__]), "StripeContext": object}


@dataclass(frozen=True)
class Route:
    """The parameters a route takes, the object it answers with and whether it is a list."""

    params: type
    resource: type | None
    is_list: bool = False


# Sandbox method name (see app.API_ROUTES) -> the SDK's types for that endpoint.
ROUTES: dict[str, Route] = {
    "create_session": Route(spc.SessionCreateParams, stripe.checkout.Session),
    "list_sessions": Route(spc.SessionListParams, stripe.checkout.Session, is_list=True),
    "retrieve_session": Route(spc.SessionRetrieveParams, stripe.checkout.Session),
    "list_line_items": Route(spc.SessionListLineItemsParams, stripe.LineItem, is_list=True),
    "expire_session": Route(spc.SessionExpireParams, stripe.checkout.Session),
    "create_refund": Route(sp.RefundCreateParams, stripe.Refund),
    "list_refunds": Route(sp.RefundListParams, stripe.Refund, is_list=True),
    "retrieve_refund": Route(sp.RefundRetrieveParams, stripe.Refund),
    "retrieve_payment_intent": Route(sp.PaymentIntentRetrieveParams, stripe.PaymentIntent),
    "retrieve_charge": Route(sp.ChargeRetrieveParams, stripe.Charge),
    "list_events": Route(sp.EventListParams, stripe.Event, is_list=True),
    "retrieve_event": Route(sp.EventRetrieveParams, stripe.Event),
    "create_account": Route(sp.AccountCreateParams, stripe.Account),
    "list_accounts": Route(sp.AccountListParams, stripe.Account, is_list=True),
    "retrieve_account": Route(sp.AccountRetrieveParams, stripe.Account),
    "create_account_link": Route(sp.AccountLinkCreateParams, stripe.AccountLink),
    "list_transfers": Route(sp.TransferListParams, stripe.Transfer, is_list=True),
    "retrieve_transfer": Route(sp.TransferRetrieveParams, stripe.Transfer),
    "list_transfer_reversals": Route(sp.TransferListReversalsParams, stripe.TransferReversal, is_list=True),
    "create_transfer": Route(sp.TransferCreateParams, stripe.Transfer),
    "create_transfer_reversal": Route(sp.TransferCreateReversalParams, stripe.TransferReversal),
    "create_customer": Route(sp.CustomerCreateParams, stripe.Customer),
    "list_customers": Route(sp.CustomerListParams, stripe.Customer, is_list=True),
    "retrieve_customer": Route(sp.CustomerRetrieveParams, stripe.Customer),
    "list_payment_methods": Route(sp.PaymentMethodListParams, stripe.PaymentMethod, is_list=True),
    "retrieve_payment_method": Route(sp.PaymentMethodRetrieveParams, stripe.PaymentMethod),
    "attach_payment_method": Route(sp.PaymentMethodAttachParams, stripe.PaymentMethod),
    "detach_payment_method": Route(sp.PaymentMethodDetachParams, stripe.PaymentMethod),
    "create_payment_intent": Route(sp.PaymentIntentCreateParams, stripe.PaymentIntent),
    "list_application_fees": Route(sp.ApplicationFeeListParams, stripe.ApplicationFee, is_list=True),
    "retrieve_application_fee": Route(sp.ApplicationFeeRetrieveParams, stripe.ApplicationFee),
    "list_fee_refunds": Route(sp.ApplicationFeeListRefundsParams, stripe.ApplicationFeeRefund, is_list=True),
    "retrieve_balance_transaction": Route(sp.BalanceTransactionRetrieveParams, stripe.BalanceTransaction),
}

# https://docs.stripe.com/expand: "You can expand recursively by specifying nested fields after
# a dot (.) ... Expansions have a maximum depth of four levels".
MAX_EXPAND_DEPTH = 4
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(\d+\.?\d*|\.\d+)")


def check_request(route: str, params: Mapping[str, Any]) -> None:
    """Refuse a request whose parameters the pinned API version does not accept."""
    spec = ROUTES.get(route)
    if spec is None:
        return
    _check_hash(params, spec.params, "")
    if "expand" in params and spec.resource is not None:
        for path in params["expand"]:
            check_expand_path(path, spec.resource, is_list=spec.is_list)
    check_constraints(route, params)


# -- the generated types -----------------------------------------------------------------


@functools.cache
def fields(typed_dict: type) -> dict[str, tuple[Any, bool]]:
    """A TypedDict's keys (request options left out) -> (type, required)."""
    module = sys.modules[typed_dict.__module__]
    hints = typing.get_type_hints(typed_dict, globalns=vars(module), localns=_OPTION_NAMES, include_extras=True)
    required = set(getattr(typed_dict, "__required_keys__", ()))
    result: dict[str, tuple[Any, bool]] = {}
    for name, hint in hints.items():
        if name in _OPTION_KEYS:
            continue
        origin = typing.get_origin(hint)
        if origin is Required:
            required.add(name)
        if origin in (NotRequired, Required):
            hint = typing.get_args(hint)[0]
        result[name] = (hint, name in required)
    return result


def _arms(hint: Any) -> list[Any]:
    """The alternatives of a union (one for anything else), ``str`` dropped beside a Literal."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        arms = list(typing.get_args(hint))
    else:
        arms = [hint]
    enums = [a for a in arms if typing.get_origin(a) is Literal and typing.get_args(a) != ("",)]
    if enums:
        arms = [a for a in arms if a is not str]
    return arms


def _allows_empty(arms: list[Any]) -> bool:
    return any(typing.get_origin(a) is Literal and "" in typing.get_args(a) for a in arms)


# -- checking a value against a type -------------------------------------------------------


def _param(prefix: str, name: str | int) -> str:
    return f"{prefix}[{name}]" if prefix else str(name)


def _check_hash(value: Mapping[str, Any], typed_dict: type, prefix: str) -> None:
    known = fields(typed_dict)
    for name, item in value.items():
        entry = known.get(name)
        if entry is None:
            raise unknown_param(_param(prefix, name))
        check_value(item, entry[0], _param(prefix, name))
    for name in _required(typed_dict):
        if name not in value:
            raise missing_param(_param(prefix, name))


@functools.cache
def _required(typed_dict: type) -> tuple[str, ...]:
    return tuple(name for name, (_, required) in fields(typed_dict).items() if required)


@dataclass(frozen=True)
class _Plan:
    """A type's alternatives sorted by the form value each can take (worked out once a type)."""

    hashes: tuple[Any, ...]
    arrays: tuple[Any, ...]
    scalars: tuple[Any, ...]
    empty_ok: bool
    scalar_name: str


@functools.cache
def _plan(hint: Any) -> _Plan:
    arms = _arms(hint)
    anything = any(a in (Any, object) for a in arms)
    return _Plan(
        hashes=tuple(a for a in arms if _is_hash(a)) + ((Any,) if anything else ()),
        arrays=tuple(a for a in arms if _is_array(a)) + ((Any,) if anything else ()),
        scalars=tuple(a for a in arms if not _is_hash(a) and not _is_array(a) and not _is_empty_only(a)),
        empty_ok=_allows_empty(arms) or anything,
        scalar_name=_scalar_name(arms),
    )


def check_value(value: Any, hint: Any, param: str) -> None:
    """Check one form-decoded value (a str, a dict or a list) against a generated type."""
    plan = _plan(hint)
    if value == "":
        if plan.empty_ok:
            return
        raise invalid(
            f"You passed an empty string for '{param}'. We assume empty values are an attempt to "
            f"unset a parameter; however '{param}' cannot be unset. You should remove '{param}' "
            "from your request or supply a non-empty value.",
            param,
            "parameter_invalid_empty",
        )
    if isinstance(value, dict):
        candidates = plan.hashes
        if not candidates:
            if plan.arrays:
                raise invalid(f"Invalid array: {param}", param)
            raise invalid(f"Invalid {plan.scalar_name}: {param} must be a {plan.scalar_name}, not a hash", param)
    elif isinstance(value, list):
        candidates = plan.arrays
        if not candidates:
            if plan.hashes:
                raise invalid(f"Invalid hash: {param}", param)
            raise invalid(f"Invalid {plan.scalar_name}: {param} must be a {plan.scalar_name}, not an array", param)
    else:
        candidates = plan.scalars
        if not candidates:
            raise invalid(f"Invalid {'array' if plan.arrays else 'hash'}: {param}", param)
    if len(candidates) == 1:
        _check_arm(value, candidates[0], param)
        return
    first_error: ApiError | None = None
    for arm in candidates:
        try:
            _check_arm(value, arm, param)
            return
        except ApiError as err:
            first_error = first_error or err
    assert first_error is not None
    raise first_error


def _is_hash(hint: Any) -> bool:
    """A TypedDict, a ``Dict[str, X]`` or a map the SDK types as ``UntypedStripeObject[X]``."""
    if is_typeddict(hint):
        return True
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, (dict, Mapping))


def _is_empty_only(hint: Any) -> bool:
    return typing.get_origin(hint) is Literal and typing.get_args(hint) == ("",)


def _is_array(hint: Any) -> bool:
    return typing.get_origin(hint) is list or hint is list


def _scalar_name(arms: list[Any]) -> str:
    for arm in arms:
        if arm is int:
            return "integer"
        if arm is bool:
            return "boolean"
        if arm in (float, Decimal):
            return "decimal"
    return "string"


@functools.cache
def _kind(hint: Any) -> tuple[str, Any]:
    """How one alternative checks a value: its kind and what the kind needs."""
    if hint in (Any, object):
        return "any", None
    if is_typeddict(hint):
        return "typeddict", hint
    if _is_hash(hint):
        args = typing.get_args(hint)
        return "map", args[-1] if args else Any
    if _is_array(hint):
        args = typing.get_args(hint)
        return "list", args[0] if args else Any
    if typing.get_origin(hint) is Literal:
        return "literal", tuple(str(a).lower() if isinstance(a, bool) else str(a) for a in typing.get_args(hint))
    if hint is bool:
        return "bool", None
    if hint is int:
        return "int", None
    if hint in (float, Decimal):
        return "decimal", None
    # str, and any form the generator has not used so far: accept rather than refuse valid input
    return "any", None


def _check_arm(value: Any, hint: Any, param: str) -> None:
    kind, detail = _kind(hint)
    if kind == "any":
        return
    if kind == "typeddict":
        _check_hash(value, detail, param)
    elif kind == "map":
        for key, item in value.items():
            if item != "":  # a map's key is unset by an empty value (metadata[key]=)
                check_value(item, detail, _param(param, key))
    elif kind == "list":
        for i, item in enumerate(value):
            check_value(item, detail, _param(param, i))
    elif kind == "literal":
        if value not in detail:
            name = param.rsplit("[", 1)[-1].rstrip("]")
            raise invalid(f"Invalid {name}: must be one of {_one_of(list(detail))}", param)
    elif kind == "bool":
        if value not in ("true", "false"):
            raise invalid(f"Invalid boolean: {value}", param)
    elif kind == "int":
        if not _INTEGER.fullmatch(value):
            raise invalid(f"Invalid integer: {value}", param, "parameter_invalid_integer")
    elif kind == "decimal" and not _DECIMAL.fullmatch(value):
        raise invalid(f"Invalid decimal: {value}", param)


def _one_of(choices: list[str]) -> str:
    """Stripe's list in an enum error: ``a``, ``a or b``, ``a, b, or c``."""
    if len(choices) <= 2:
        return " or ".join(choices)
    return ", ".join(choices[:-1]) + f", or {choices[-1]}"


# -- expand ---------------------------------------------------------------------------------


def check_expand_path(path: Any, resource: type, *, is_list: bool) -> None:
    """Refuse an ``expand[]`` path that names a field the resource cannot expand
    (https://docs.stripe.com/expand: "you can expand ... fields marked as expandable")."""
    if not isinstance(path, str):
        raise invalid("Invalid array: expand", "expand")
    parts = path.split(".")
    if is_list:
        if parts[0] != "data" or len(parts) < 2:
            raise _not_expandable(path)
        parts = parts[1:]
    if len(parts) > MAX_EXPAND_DEPTH:
        raise invalid(
            f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. Property: {path}",
            "expand",
        )
    owner: type = resource
    i = 0
    while i < len(parts):
        kind, target = _field_kind(owner, parts[i])
        last = i == len(parts) - 1
        if kind in ("expandable", "list") and last:
            return
        if kind == "nested" and not last and target is not None:
            owner, i = target, i + 1
            continue
        if kind in ("expandable", "list") and target is not None:
            owner, i = target, i + 1
            if kind == "list":  # a list's items are reached through its ``data``
                if parts[i] != "data" or i == len(parts) - 1:
                    raise _not_expandable(path)
                i += 1
            continue
        raise _not_expandable(path)


def _not_expandable(path: str) -> ApiError:
    return invalid(f"This property cannot be expanded ({path}).", "expand")


@functools.cache
def _field_kind(owner: type, name: str) -> tuple[str, type | None]:
    """How a resource's field can be expanded: ``expandable`` (an id or the object),
    ``list`` (an includable list), ``nested`` (an object inside, to walk through) or ``plain``."""
    hint = _annotations(owner).get(name)
    if hint is None:
        return "plain", None
    arms = [a for a in _arms(hint) if a is not type(None)]
    if str in arms and len(arms) > 1:
        others = [_resolve(a, owner) for a in arms if a is not str]
        return "expandable", next((o for o in others if o is not None), None)
    if len(arms) == 1 and typing.get_origin(arms[0]) is ListObject:
        (item,) = typing.get_args(arms[0]) or (None,)
        return "list", _resolve(item, owner) if item is not None else None
    if len(arms) == 1 and isinstance(arms[0], type) and issubclass(arms[0], StripeObject):
        return "nested", arms[0]
    return "plain", None


@functools.cache
def _annotations(owner: type) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for klass in reversed(owner.__mro__):
        merged.update(vars(klass).get("__annotations__", {}))
    return merged


def _resolve(hint: Any, owner: type) -> type | None:
    """A resource class from an annotation (a class, or a forward reference by name)."""
    if isinstance(hint, type):
        return hint
    name = hint.__forward_arg__ if isinstance(hint, typing.ForwardRef) else hint if isinstance(hint, str) else None
    if name is None:
        return None
    found = vars(sys.modules[owner.__module__]).get(name) or vars(owner).get(name)
    for package in (stripe, stripe.checkout):  # the SDK imports its classes lazily
        if not isinstance(found, type):
            try:
                found = getattr(package, name)
            except AttributeError:
                found = None
    return found if isinstance(found, type) else None
