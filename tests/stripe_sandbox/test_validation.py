"""The sandbox checks every request against the pinned SDK's parameter types (stripe.params)
and Stripe's documented rules the types do not carry; each test names the parameter and the
error Stripe answers. Requests go over the wire as form pairs, as the SDK sends them."""

from __future__ import annotations

from typing import Any

import pytest

from stripe_sandbox.errors import ApiError
from stripe_sandbox.schema import ROUTES, check_request, check_value, fields

from .helpers import API_KEY, CANCEL_URL, SUCCESS_URL, http, raw_get, submit_card
from .test_connect import make_account, onboard, paid_destination_charge
from .typed_params import Outer

AUTH = {"Authorization": f"Bearer {API_KEY}"}

SESSION = {
    "mode": "payment",
    "success_url": SUCCESS_URL,
    "cancel_url": CANCEL_URL,
    "line_items[0][price_data][currency]": "usd",
    "line_items[0][price_data][unit_amount]": "5000",
    "line_items[0][price_data][product_data][name]": "Lesson",
    "line_items[0][quantity]": "1",
}
ACCOUNT = {
    "type": "express",
    "country": "US",
    "email": "ada@example.com",
    "capabilities[card_payments][requested]": "true",
    "capabilities[transfers][requested]": "true",
}


def post(sandbox, path: str, data: dict[str, str]) -> Any:
    return http.post(f"{sandbox.base_url}{path}", data=data, headers=AUTH)


def get(sandbox, path: str, params: dict[str, str] | list[tuple[str, str]]) -> Any:
    return http.get(f"{sandbox.base_url}{path}", params=params, headers=AUTH)


def refused(response: Any, param: str, code: str | None) -> dict[str, Any]:
    """The error of a 400 answer, checked for Stripe's shape, param and code."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    if code is None:
        assert "doc_url" not in error
    else:
        assert error["doc_url"] == "https://stripe.com/docs/error-codes/" + code.replace("_", "-")
    return error


# -- names: parameters of the pinned version only ------------------------------------------


def test_payment_method_types_of_older_versions_is_an_unknown_parameter(sandbox):
    error = refused(
        post(sandbox, "/v1/checkout/sessions", {**SESSION, "payment_method_types[0]": "card"}),
        "payment_method_types",
        "parameter_unknown",
    )
    assert error["message"] == "Received unknown parameter: payment_method_types"


def test_allowed_payment_method_types_of_the_pinned_version_is_accepted(sandbox):
    answer = post(sandbox, "/v1/checkout/sessions", {**SESSION, "allowed_payment_method_types[0]": "card"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["allowed_payment_method_types"] == ["card"]
    refused(
        post(sandbox, "/v1/checkout/sessions", {**SESSION, "allowed_payment_method_types[0]": "carrier_pigeon"}),
        "allowed_payment_method_types[0]",
        None,
    )


def test_an_unknown_nested_parameter_is_named_with_its_path(sandbox):
    error = refused(
        post(sandbox, "/v1/accounts", {**ACCOUNT, "capabilities[card_payments][bogus]": "true"}),
        "capabilities[card_payments][bogus]",
        "parameter_unknown",
    )
    assert error["message"] == "Received unknown parameter: capabilities[card_payments][bogus]"
    refused(
        post(sandbox, "/v1/checkout/sessions", {**SESSION, "line_items[0][price_data][colour]": "red"}),
        "line_items[0][price_data][colour]",
        "parameter_unknown",
    )


def test_an_unknown_query_parameter_of_a_retrieve_is_refused(sandbox):
    refused(get(sandbox, "/v1/charges/ch_nope", {"include": "all"}), "include", "parameter_unknown")


# -- values: Literal enums -----------------------------------------------------------------


def test_ui_mode_hosted_of_older_versions_is_refused_and_hosted_page_accepted(sandbox):
    error = refused(post(sandbox, "/v1/checkout/sessions", {**SESSION, "ui_mode": "hosted"}), "ui_mode", None)
    assert error["message"] == "Invalid ui_mode: must be one of elements, embedded_page, form, or hosted_page"
    answer = post(sandbox, "/v1/checkout/sessions", {**SESSION, "ui_mode": "hosted_page"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["ui_mode"] == "hosted_page"


def test_account_link_collect_must_be_one_of_the_literal(sandbox):
    account = post(sandbox, "/v1/accounts", ACCOUNT).json()
    link = {
        "account": account["id"],
        "type": "account_onboarding",
        "refresh_url": "https://app.test/r",
        "return_url": "https://app.test/x",
    }
    error = refused(post(sandbox, "/v1/account_links", {**link, "collect": "bogus"}), "collect", None)
    assert error["message"] == "Invalid collect: must be one of currently_due or eventually_due"
    assert post(sandbox, "/v1/account_links", {**link, "collect": "eventually_due"}).status_code == 200


def test_a_list_status_outside_the_literal_is_refused(sandbox):
    refused(get(sandbox, "/v1/checkout/sessions", {"status": "paid"}), "status", None)
    assert get(sandbox, "/v1/checkout/sessions", {"status": "open"}).status_code == 200


# -- types ---------------------------------------------------------------------------------


def test_a_bad_integer_is_parameter_invalid_integer(sandbox):
    error = refused(
        post(sandbox, "/v1/checkout/sessions", {**SESSION, "line_items[0][quantity]": "two"}),
        "line_items[0][quantity]",
        "parameter_invalid_integer",
    )
    assert error["message"] == "Invalid integer: two"
    refused(
        post(sandbox, "/v1/checkout/sessions", {**SESSION, "expires_at": "soon"}),
        "expires_at",
        "parameter_invalid_integer",
    )
    refused(get(sandbox, "/v1/events", {"limit": "ten"}), "limit", "parameter_invalid_integer")


def test_a_bad_boolean_is_refused(sandbox):
    error = refused(
        post(sandbox, "/v1/accounts", {**ACCOUNT, "capabilities[card_payments][requested]": "maybe"}),
        "capabilities[card_payments][requested]",
        None,
    )
    assert error["message"] == "Invalid boolean: maybe"


def test_a_string_where_a_hash_belongs_and_a_hash_where_a_string_belongs(sandbox):
    error = refused(post(sandbox, "/v1/checkout/sessions", {**SESSION, "metadata": "booking"}), "metadata", None)
    assert error["message"] == "Invalid hash: metadata"
    refused(post(sandbox, "/v1/checkout/sessions", {**SESSION, "customer_email[a]": "x"}), "customer_email", None)
    refused(post(sandbox, "/v1/checkout/sessions", {**SESSION, "line_items": "all"}), "line_items", None)


def test_an_empty_string_is_parameter_invalid_empty_unless_it_unsets(sandbox):
    error = refused(
        post(sandbox, "/v1/checkout/sessions", {**SESSION, "customer_email": ""}),
        "customer_email",
        "parameter_invalid_empty",
    )
    assert error["message"].startswith("You passed an empty string for 'customer_email'.")
    # a metadata key is unset by an empty value
    answer = post(sandbox, "/v1/checkout/sessions", {**SESSION, "metadata[a]": "1", "metadata[b]": ""})
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"] == {"a": "1"}


# -- required keys ---------------------------------------------------------------------------


def test_a_missing_required_parameter_is_parameter_missing(sandbox):
    account = post(sandbox, "/v1/accounts", ACCOUNT).json()
    error = refused(
        post(sandbox, "/v1/account_links", {"account": account["id"], "refresh_url": "https://a.test/r"}),
        "type",
        "parameter_missing",
    )
    assert error["message"] == "Missing required param: type."


def test_a_missing_required_nested_key_is_named_with_its_path(sandbox):
    data = {k: v for k, v in SESSION.items() if not k.endswith("[product_data][name]")}
    data["line_items[0][price_data][product_data][description]"] = "no name"
    refused(
        post(sandbox, "/v1/checkout/sessions", data),
        "line_items[0][price_data][product_data][name]",
        "parameter_missing",
    )


# -- expand ------------------------------------------------------------------------------------


def test_expand_of_a_field_that_is_not_expandable_is_refused(sandbox):
    session = post(sandbox, "/v1/checkout/sessions", SESSION).json()
    error = refused(
        get(sandbox, f"/v1/checkout/sessions/{session['id']}", [("expand[]", "customer_email")]),
        "expand",
        None,
    )
    assert error["message"] == "This property cannot be expanded (customer_email)."
    refused(get(sandbox, f"/v1/checkout/sessions/{session['id']}", [("expand[]", "metadata.x")]), "expand", None)
    refused(get(sandbox, "/v1/checkout/sessions", [("expand[]", "data.customer_email")]), "expand", None)
    refused(get(sandbox, "/v1/checkout/sessions", [("expand[]", "payment_intent")]), "expand", None)


def test_expand_of_expandable_fields_and_through_nested_objects_is_accepted(sandbox):
    session = post(sandbox, "/v1/checkout/sessions", SESSION).json()
    for path in ("payment_intent", "line_items", "payment_intent.latest_charge.transfer"):
        answer = get(sandbox, f"/v1/checkout/sessions/{session['id']}", [("expand[]", path)])
        assert answer.status_code == 200, (path, answer.text)
    listing = get(sandbox, "/v1/checkout/sessions", [("expand[]", "data.payment_intent.latest_charge")])
    assert listing.status_code == 200, listing.text


def test_expand_deeper_than_four_levels_is_refused(sandbox):
    path = "payment_intent.latest_charge.transfer.destination.x"
    session = post(sandbox, "/v1/checkout/sessions", SESSION).json()
    error = refused(get(sandbox, f"/v1/checkout/sessions/{session['id']}", [("expand[]", path)]), "expand", None)
    assert "more than 4 levels" in error["message"]


# -- rules the types do not carry --------------------------------------------------------------


@pytest.mark.parametrize("country", ["ZZ", "USA", "u1"])
def test_an_account_country_must_be_iso_3166_alpha_2(sandbox, country):
    error = refused(post(sandbox, "/v1/accounts", {**ACCOUNT, "country": country}), "country", "country_code_invalid")
    assert error["message"].startswith(f"Country '{country}' is unknown.")


def test_an_account_in_a_real_country_is_accepted(sandbox):
    answer = post(sandbox, "/v1/accounts", {**ACCOUNT, "country": "DE"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["country"] == "DE"


@pytest.mark.parametrize("email", ["not-an-email", "ada@", "ada@@example.com", "ada example@example.com"])
def test_an_account_email_must_be_an_email(sandbox, email):
    error = refused(post(sandbox, "/v1/accounts", {**ACCOUNT, "email": email}), "email", "email_invalid")
    assert error["message"] == f"Invalid email address: {email}"


def test_a_customer_email_must_be_an_email(sandbox):
    refused(
        post(sandbox, "/v1/checkout/sessions", {**SESSION, "customer_email": "parent@"}),
        "customer_email",
        "email_invalid",
    )


def test_the_list_filter_customer_details_email_is_accepted_and_filters(sandbox):
    paid = post(sandbox, "/v1/checkout/sessions", {**SESSION, "customer_email": "pat@example.com"}).json()
    post(sandbox, "/v1/checkout/sessions", {**SESSION, "customer_email": "kim@example.com"})
    assert submit_card(paid["url"]).status_code == 303
    listing = get(sandbox, "/v1/checkout/sessions", {"customer_details[email]": "pat@example.com"})
    assert listing.status_code == 200, listing.text
    assert [s["id"] for s in listing.json()["data"]] == [paid["id"]]
    refused(
        get(sandbox, "/v1/checkout/sessions", {"customer_details[phone]": "+100"}),
        "customer_details[phone]",
        "parameter_unknown",
    )
    refused(
        get(sandbox, "/v1/checkout/sessions", {"customer_details[email]": "pat"}),
        "customer_details[email]",
        "email_invalid",
    )


def _paid_charge(sandbox) -> dict[str, Any]:
    session = post(sandbox, "/v1/checkout/sessions", SESSION).json()
    assert submit_card(session["url"]).status_code == 303
    return raw_get(sandbox, f"/v1/checkout/sessions/{session['id']}")


def test_reverse_transfer_on_a_charge_without_a_transfer_is_refused(sandbox):
    paid = _paid_charge(sandbox)
    data = {"payment_intent": paid["payment_intent"], "amount": "100", "reverse_transfer": "true"}
    error = refused(post(sandbox, "/v1/refunds", data), "reverse_transfer", None)
    assert "has no transfer" in error["message"]
    intent = raw_get(sandbox, f"/v1/payment_intents/{paid['payment_intent']}?expand[]=latest_charge")
    assert intent["latest_charge"]["amount_refunded"] == 0  # nothing half-done


def test_refund_application_fee_on_a_charge_without_a_fee_is_refused(sandbox, client):
    account = make_account(client)
    onboard(client, account.id)
    without_fee = paid_destination_charge(client, sandbox, account.id, fee=0)
    data = {"payment_intent": without_fee["id"], "amount": "100", "refund_application_fee": "true"}
    refused(post(sandbox, "/v1/refunds", data), "refund_application_fee", None)
    # with both (a transfer and a fee) the same refund goes through
    with_fee = paid_destination_charge(client, sandbox, account.id, fee=750)
    data = {**data, "payment_intent": with_fee["id"], "reverse_transfer": "true"}
    assert post(sandbox, "/v1/refunds", data).status_code == 200


# -- the checks are the SDK's types, read at run time ------------------------------------------


def test_every_route_reads_its_parameters_from_the_sdk_types():
    import stripe.params.checkout as spc

    create = fields(spc.SessionCreateParams)
    assert "allowed_payment_method_types" in create and "payment_method_types" not in create
    assert "api_key" not in create and "idempotency_key" not in create  # request options, not params
    for route in ROUTES.values():
        assert fields(route.params)  # every route's TypedDict evaluates
    check_request("create_session", {"mode": "payment", "ui_mode": "hosted_page"})


def test_valid_parameters_the_sandbox_does_not_act_on_are_accepted(sandbox):
    # Stripe accepts every name of the pinned version; the sandbox ignores those it does not model.
    answer = post(sandbox, "/v1/checkout/sessions", {**SESSION, "integration_identifier": "tutorbook"})
    assert answer.status_code == 200, answer.text
    answer = post(sandbox, "/v1/accounts", {**ACCOUNT, "individual[first_name]": "Ada"})
    assert answer.status_code == 200, answer.text
    listing = get(sandbox, "/v1/checkout/sessions", {"customer_account": "acct_123"})
    assert listing.status_code == 200, listing.text
    assert listing.json()["data"] == []  # a filter is applied, never ignored
    refused(
        post(sandbox, "/v1/accounts", {**ACCOUNT, "individual[favourite_colour]": "red"}),
        "individual[favourite_colour]",
        "parameter_unknown",
    )


def test_a_valid_list_filter_the_sandbox_does_not_apply_is_refused_not_ignored(sandbox):
    error = refused(get(sandbox, "/v1/events", {"delivery_success": "true"}), "delivery_success", None)
    assert error["message"] == "The Stripe sandbox does not filter lists by delivery_success."


def test_the_checks_follow_whatever_typeddict_they_are_given():
    # the mechanism, on a TypedDict written like the SDK's generated ones: nothing is per-route
    check_value({"items": [{"size": "3", "colour": "red"}], "note": "", "tags": ""}, Outer, "x")
    cases = [
        ({"items": [{"colour": "red"}]}, "x[items][0][size]", "parameter_missing"),
        ({"items": [{"size": "3", "colour": "green"}]}, "x[items][0][colour]", None),
        ({"items": [{"size": "three"}]}, "x[items][0][size]", "parameter_invalid_integer"),
        ({"items": [{"size": "3", "shape": "round"}]}, "x[items][0][shape]", "parameter_unknown"),
        ({"items": {"size": "3"}}, "x[items]", None),
        ({"tags": "a"}, "x[tags]", None),
    ]
    for value, param, code in cases:
        with pytest.raises(ApiError) as raised:
            check_value(value, Outer, "x")
        assert (raised.value.param, raised.value.code) == (param, code), value
