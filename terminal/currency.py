"""ISO 4217 currencies the CLI accepts by code or number, with their minor-unit exponents."""

from __future__ import annotations

from emvkit.terminal.errors import EmvkitError

__all__ = ["MAX_AMOUNT_DIGITS", "Currency", "CurrencyError", "format_amount", "lookup", "parse_amount"]

# alpha code: (numeric code, exponent)
_TABLE = {
    "EUR": (978, 2), "USD": (840, 2), "GBP": (826, 2), "CHF": (756, 2), "CNY": (156, 2), "JPY": (392, 0),
    "SEK": (752, 2), "NOK": (578, 2), "DKK": (208, 2), "PLN": (985, 2), "CAD": (124, 2), "AUD": (36, 2),
    "HKD": (344, 2), "SGD": (702, 2), "INR": (356, 2), "BRL": (986, 2), "KRW": (410, 0), "TRY": (949, 2),
}


class Currency:
    def __init__(self, code: str, number: int, exponent: int) -> None:
        self.code, self.number, self.exponent = code, number, exponent

    @property
    def bcd(self) -> bytes:
        return bytes.fromhex(f"{self.number:04d}")


class CurrencyError(EmvkitError):
    pass


def lookup(text: str) -> Currency:
    """By alpha code (EUR) or ISO number (978)."""
    key = text.strip().upper()
    if key in _TABLE:
        return Currency(key, *_TABLE[key])
    if key.isascii() and key.isdigit():
        number = int(key)
        for code, (n, exponent) in _TABLE.items():
            if n == number:
                return Currency(code, n, exponent)
        if 0 < number < 1000:
            return Currency(key.zfill(3), number, 2)
    raise CurrencyError(f"unknown currency {text!r} (use a code such as EUR or a number such as 978)")


# EMV amounts are n 12 (Amount, Authorised 9F02; Amount, Other 9F03): at most 12 digits in minor units.
MAX_AMOUNT_DIGITS = 12


def parse_amount(text: str, currency: Currency) -> int:
    """'12.34' in minor units of the currency (1234 for EUR).

    The one amount syntax of the CLI: ASCII digits, then optionally a point and
    at most the currency's exponent of decimals (none for JPY); no sign, space,
    exponent or other digits; at most 12 digits in minor units (n 12).
    """
    whole, point, frac = text.partition(".")
    ok = whole.isascii() and whole.isdigit() and (not point or (frac.isascii() and frac.isdigit()))
    if not ok:
        decimals = f"[.{'d' * currency.exponent}]" if currency.exponent else ""
        raise CurrencyError(f"amount {text!r} is not an amount such as 12.34: ASCII digits d{decimals}")
    if len(frac) > currency.exponent:
        raise CurrencyError(f"amount {text!r} has more than {currency.exponent} decimals for {currency.code}"
                            if currency.exponent else f"amount {text!r}: {currency.code} amounts have no decimals")
    minor = (whole.lstrip("0") + frac.ljust(currency.exponent, "0")).lstrip("0")
    if len(minor) > MAX_AMOUNT_DIGITS:
        raise CurrencyError(f"amount {text!r} does not fit {MAX_AMOUNT_DIGITS} digits in minor units")
    return int(minor or "0")


def format_amount(minor: int, currency: Currency) -> str:
    if currency.exponent == 0:
        return f"{minor} {currency.code}"
    whole, frac = divmod(minor, 10**currency.exponent)
    return f"{whole}.{frac:0{currency.exponent}d} {currency.code}"
