"""The ISO code sets every module checks against: ISO 4217 currencies, ISO 3166-1 countries.

One source for all: the parsers (which normalise messy spellings to these codes), the pandera
schemas and the sandbox read the same lists, embedded in `_isodata.py` (generated from Debian's
iso-codes), so a code accepted by one is accepted by the others.
"""

from __future__ import annotations

from fincome_toolkit._isodata import COUNTRIES, CURRENCIES

ISO_4217_CURRENCIES: frozenset[str] = frozenset(CURRENCIES)
ISO_3166_ALPHA2_COUNTRIES: frozenset[str] = frozenset(alpha2 for alpha2, *_ in COUNTRIES)
