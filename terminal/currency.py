"""ISO 4217 currencies by alphabetic code or number, with their minor-unit exponents.

The table is the ``iso4217`` package's (the ISO 4217 maintenance agency's lists), so
every active currency is known: ``MXN`` and ``484`` are the same currency, shown as ``MXN``.
"""

from __future__ import annotations

from iso4217 import Currency as _Iso4217

from emvkit.terminal.errors import EmvkitError

__all__ = ["MAX_AMOUNT_DIGITS", "Currency", "CurrencyError", "format_amount", "lookup", "parse_amount"]

# ISO number -> alphabetic code, for the numbers the CLI and the terminal configuration (5F2A) give.
_BY_NUMBER = {entry.number: entry.code for entry in _Iso4217}


class Currency:
    def __init__(self, code: str, number: int, exponent: int) -> None:
        self.code, self.number, self.exponent = code, number, exponent

    @property
    def bcd(self) -> bytes:
        return bytes.fromhex(f"{self.number:04d}")


class CurrencyError(EmvkitError):
    pass


def lookup(text: str) -> Currency:
    """By alphabetic code (``EUR``, any case) or ISO number (``978``, ``0978``), as ISO 4217 lists them."""
    key = text.strip().upper()
    if key.isascii() and key.isdigit():
        key = _BY_NUMBER.get(int(key), key)
    try:
        entry = _Iso4217(key) if key.isascii() and key.isalpha() and len(key) == 3 else None
    except ValueError:
        entry = None
    if entry is None:
        raise CurrencyError(f"unknown currency {text!r}: not in ISO 4217 (use a code such as EUR or a number "
                            "such as 978)")
    if entry.exponent is None:  # funds, metals, XXX: ISO 4217 gives them no minor unit
        raise CurrencyError(f"currency {text!r} ({entry.code}) has no minor unit in ISO 4217: a terminal cannot "
                            "take amounts in it")
    return Currency(entry.code, entry.number, entry.exponent)


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
