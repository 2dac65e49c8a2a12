"""Built-in spellings (English and French) of statuses, units, types, currencies and countries.

Keys are written naturally here and normalised (lower case, accents and punctuation removed) by
the parsers, so 'Payée', 'PAYEE' and 'payée' are one entry. Users add their own through
`ParseOptions` or the `[options]` table of a mapping file.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def _table(spellings: dict[T, str]) -> dict[str, T]:
    """Invert {canonical: "spelling | spelling | ..."} into {spelling: canonical}."""
    return {
        word.strip(): canonical
        for canonical, words in spellings.items()
        for word in words.split("|")
        if word.strip()
    }


# Invoice payment status → open | paid | unpaid. Fincome's file import also knows `pending`
# (payment in progress): the API has no such status, so it is read as `open` (not yet paid).
INVOICE_STATUS_SYNONYMS: dict[str, str] = _table(
    {
        "open": "open | opened | pending | due | outstanding | issued | sent | posted | "
        "awaiting payment | in progress | partially paid | partial | ouvert | ouverte | "
        "en attente | en attente de paiement | en cours | a payer | emise | emis | envoyee | "
        "envoye | partiellement payee | partiellement paye | non echue",
        "paid": "paid | payed | settled | closed | complete | completed | succeeded | success | "
        "paid in full | fully paid | payee | paye | payees | regle | reglee | regles | "
        "reglees | acquitte | acquittee | encaisse | encaissee | solde | soldee",
        "unpaid": "unpaid | not paid | overdue | late | past due | uncollectible | failed | "
        "payment failed | bad debt | defaulted | impaye | impayee | impayes | non paye | "
        "non payee | en retard | retard | echue | en souffrance | irrecouvrable | contentieux",
    }
)

# Stripe's `past_due` subscription is still billing, hence active.
SUBSCRIPTION_STATUS_SYNONYMS: dict[str, str] = _table(
    {
        "active": "active | live | ongoing | running | current | in force | past due | actif | "
        "en cours | en vigueur",
        "trialing": "trialing | trialling | trial | in trial | free trial | essai | en essai | "
        "periode d essai | essai gratuit",
        "paused": "paused | pause | suspended | on hold | en pause | suspendu | suspendue",
        "cancelled": "cancelled | canceled | cancel | churned | annule | annulee | resilie | "
        "resiliee | resiliation",
        "ended": "ended | expired | finished | completed | closed | inactive | lapsed | termine | "
        "terminee | expire | expiree | fini | finie | echu | echue | inactif | clos | cloture | "
        "cloturee",
    }
)

# Interval unit words → (canonical unit, count of that unit per word): quarterly = 3 months.
INTERVAL_SYNONYMS: dict[str, tuple[str, int]] = _table(
    {
        ("day", 1): "day | days | daily | d | jour | jours | quotidien | quotidienne",
        ("week", 1): "week | weeks | weekly | w | wk | semaine | semaines | hebdomadaire | hebdo",
        ("month", 1): "month | months | monthly | m | mo | mth | mths | mois | mensuel | "
        "mensuelle | mensuellement | per month | par mois",
        ("month", 2): "bimonthly | bimestriel | bimestrielle | bimestre",
        ("month", 3): "quarter | quarters | quarterly | q | trimestre | trimestres | "
        "trimestriel | trimestrielle",
        ("month", 6): "semiannual | semi annual | semi annually | half year | half yearly | "
        "biannual | semestre | semestriel | semestrielle",
        ("year", 1): "year | years | yearly | annual | annually | y | yr | yrs | an | ans | "
        "annee | annees | annuel | annuelle | per year | par an",
    }
)

INVOICE_TYPE_SYNONYMS: dict[str, str] = _table(
    {
        "subscription": "subscription | subscriptions | recurring | recurrent | recurrente | "
        "sub | subscription fee | renewal | abonnement | abonnements | recurring fee | redevance",
        "one_off": "one off | oneoff | one time | onetime | non recurring | ponctuel | "
        "ponctuelle | setup | set up | setup fee | service | services | professional services | "
        "installation | onboarding | consulting | frais de mise en service | mise en service | "
        "prestation | unique",
    }
)

# Currency symbols, matched as written (spaces removed); `$` alone is read as USD.
CURRENCY_SYMBOLS: dict[str, str] = {
    "€": "EUR", "$": "USD", "US$": "USD", "USD$": "USD", "£": "GBP", "¥": "JPY", "₹": "INR",
    "C$": "CAD", "CA$": "CAD", "CAD$": "CAD", "A$": "AUD", "AU$": "AUD", "AUD$": "AUD",
    "NZ$": "NZD", "R$": "BRL", "₩": "KRW", "₺": "TRY", "₽": "RUB", "₪": "ILS", "zł": "PLN",
    "Fr.": "CHF", "kr.": "DKK", "Kč": "CZK", "S$": "SGD", "HK$": "HKD",
}  # fmt: skip

CURRENCY_NAMES: dict[str, str] = _table(
    {
        "EUR": "euro | euros",
        "USD": "dollar | dollars | us dollar | us dollars | dollar us | dollars us | "
        "dollar americain | dollars americains",
        "GBP": "pound | pounds | pound sterling | pounds sterling | sterling | livre | livres | "
        "livre sterling | livres sterling",
        "CHF": "swiss franc | swiss francs | franc suisse | francs suisses",
        "CAD": "canadian dollar | canadian dollars | dollar canadien | dollars canadiens",
        "AUD": "australian dollar | australian dollars | dollar australien",
        "JPY": "yen | yens | japanese yen",
        "CNY": "yuan | renminbi | rmb",
        "INR": "rupee | rupees | indian rupee | roupie | roupies",
        "PLN": "zloty | zlotys",
        "SEK": "swedish krona | couronne suedoise",
        "NOK": "norwegian krone | couronne norvegienne",
        "DKK": "danish krone | couronne danoise",
        "MAD": "dirham | dirhams | dirham marocain",
        "BRL": "real | reais | real bresilien",
    }
)

# Country names the ISO list does not spell the way people write them.
COUNTRY_EXTRA_NAMES: dict[str, str] = _table(
    {
        "GB": "uk | u k | great britain | britain | england | scotland | wales | "
        "northern ireland | grande bretagne | angleterre | ecosse | pays de galles",
        "US": "usa | u s a | u s | america | united states of america | etats unis | "
        "etats unis d amerique | amerique",
        "NL": "holland | the netherlands | hollande | pays bas",
        "KR": "south korea | korea | coree du sud | coree",
        "KP": "north korea | coree du nord",
        "RU": "russia | russie",
        "CZ": "czech republic | republique tcheque",
        "CI": "ivory coast | cote d ivoire | cote divoire",
        "VN": "vietnam | viet nam",
        "IR": "iran",
        "SY": "syria | syrie",
        "BO": "bolivia | bolivie",
        "VE": "venezuela",
        "TZ": "tanzania | tanzanie",
        "MD": "moldova | moldavie",
        "TW": "taiwan",
        "LA": "laos",
        "MK": "macedonia | macedoine | macedoine du nord",
        "TR": "turkey | turquie | turkiye",
        "AE": "uae | emirates | emirats arabes unis | emirats",
        "DE": "deutschland | rfa",
        "ES": "espana",
        "IT": "italia",
        "CH": "schweiz | svizzera",
        "BE": "belgie",
        "GR": "el",  # the EU's code for Greece
        "VA": "vatican | holy see | saint siege",
    }
)
