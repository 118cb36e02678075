"""The currencies Tutorbook charges in: one table for the whole product (the pages, the emails,
the teacher's profile, the booking), from Stripe's documentation.

- Minor units (docs.stripe.com/currencies, "Zero-decimal currencies" and "Three-decimal
  currencies"): every amount is an integer of the currency's minor unit; the zero-decimal
  currencies have none (JPY 500 is `500`), the three-decimal ones have thousandths, all others
  hundredths.
- Minimum charge (docs.stripe.com/currencies, "Minimum and maximum charge amounts"): Stripe
  refuses a charge below it (`amount_too_small`). The table is per settlement currency; the
  product lets a teacher price only in a currency of this table, so every price it makes can
  be checked against it. BGN, in Stripe's older tables, is left out: Bulgaria has used the euro
  since 1 January 2026.

The sandbox (`stripe_sandbox.currencies`) keeps its own copy: it must not depend on the product.
"""

from __future__ import annotations

from dataclasses import dataclass

ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

# Stripe's minimum charge per currency, in minor units.
MINIMUM_CHARGE: dict[str, int] = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}


@dataclass(frozen=True)
class Currency:
    code: str  # lower case, as Stripe wants it
    exponent: int  # digits after the decimal point: 0, 2 or 3
    minimum: int  # Stripe's minimum charge, minor units

    def text(self, amount: int) -> str:
        """Minor units as text: "USD 45.00", "JPY 4,500"."""
        return money(amount, self.code)


def exponent(code: str) -> int:
    """Digits after the decimal point of a currency's amounts (any ISO code: 2 unless Stripe
    lists it as zero- or three-decimal)."""
    code = code.lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


SUPPORTED: dict[str, Currency] = {c: Currency(c, exponent(c), m) for c, m in MINIMUM_CHARGE.items()}


def get(code: str) -> Currency | None:
    """The supported currency with this code (any case), or None."""
    return SUPPORTED.get(code.lower())


def money(amount: int, currency: str) -> str:
    """Minor units with the currency: (4500, "usd") -> "USD 45.00", (4500, "jpy") -> "JPY 4,500"."""
    places = exponent(currency)
    return f"{currency.upper()} {amount / 10**places:,.{places}f}"


def session_price(*, hourly_rate: int, minutes: int) -> int:
    """Minor units for `minutes` at `hourly_rate`, rounded half up (what a booking costs)."""
    return (hourly_rate * minutes + 30) // 60


def minimum_rate(currency: Currency, *, minutes: int) -> int:
    """The least hourly rate whose session of `minutes` costs at least Stripe's minimum charge."""
    # session_price(r, m) >= minimum  <=>  r * m + 30 >= 60 * minimum
    return max(1, -(-(60 * currency.minimum - 30) // minutes))
