"""Time layout of the sample generator: when each subscription starts, ends, how often it bills.

Everything happens in *month indices* (0 = the first month of the history) with numpy, so that ten
million invoices take seconds. Random numbers are drawn once (`draw_histories`); the layout then
only transforms them (`lay_out`), which lets `calibrate` search the one knob that moves the number
of invoices, the customers' start-month skew, without changing anything else.

A customer's subscriptions follow each other in time. Between two of them is either a *switch*
(an upgrade or downgrade: the old one ends the day the new one starts) or a *churn* followed, some
months later, by a *reactivation*. The last one is open-ended unless the customer churned for good.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HISTORY_MONTHS = 36
FIRST_MONTH = np.datetime64("2023-11", "M")  # month index 0; as_of is the 1st of month index 36

INTERVAL_MONTHS = np.array([1, 3, 12])  # monthly, quarterly, yearly
INTERVAL_SHARES = np.array([0.75, 0.13, 0.12])
REACTIVATION_SHARE = 0.3  # of the transitions between two subscriptions of one customer
FINAL_CHURN_SHARE = 0.3  # customers whose last subscription ends before as_of
GAP_WEIGHT = 0.5  # how long a churned customer stays away, relative to a subscription's length
TAIL_WEIGHT = 1.0  # how long before as_of a customer churned for good
FIRST_OF_MONTH_SHARE = 0.45  # subscriptions anchored on the 1st; the others on any day 1..31
SHOWCASE_MONTH = 2  # January 2024
MIN_SKEW, MAX_SKEW = 0.05, 60.0  # start-month skews: everyone starts late ... everyone early


@dataclass(frozen=True)
class Draws:
    """Every random number the layout needs, one entry per customer or per subscription."""

    customer: np.ndarray  # customer index of each subscription (subscriptions grouped by customer)
    group_start: np.ndarray  # index of the customer's first subscription, per subscription
    is_last: np.ndarray  # the customer's last planned subscription
    reactivation: np.ndarray  # a churn gap precedes this subscription (never on a first one)
    interval: np.ndarray  # planned months per billing interval
    weight: np.ndarray  # share of the customer's window this subscription lasts
    gap_weight: np.ndarray  # share of the window spent away before a reactivation
    final_churn: np.ndarray  # per customer: the last subscription ends before as_of
    tail_weight: np.ndarray  # per customer: share of the window after the final churn
    start_draw: np.ndarray  # per customer, uniform [0, 1): where in the history it starts
    pinned_first_month: np.ndarray  # per customer: a forced first month index, or -1
    subscriptions_per_customer: np.ndarray
    day: np.ndarray  # anchor day wished for each subscription (1..31, clamped later)


@dataclass(frozen=True)
class Layout:
    """Where each subscription sits in time (month indices) and how many periods it bills."""

    keep: np.ndarray  # planned subscriptions that start before as_of
    start_month: np.ndarray
    interval: np.ndarray  # months per billing interval
    periods: np.ndarray  # periods of a closed subscription (ignored when open)
    is_open: np.ndarray  # open-ended (still active at as_of)
    billed: np.ndarray  # periods starting before as_of: one invoice each

    @property
    def invoices(self) -> int:
        """Recurring invoices this layout produces."""
        return int(self.billed[self.keep].sum())


def draw_histories(rng: np.random.Generator, customers: int, subscriptions: int) -> Draws:
    """Draw the random skeleton: how many subscriptions each customer has, transitions, weights."""
    per_customer = 1 + np.bincount(
        rng.integers(0, customers, size=subscriptions - customers), minlength=customers
    )
    customer = np.repeat(np.arange(customers), per_customer)
    first = np.cumsum(per_customer) - per_customer
    group_start = first[customer]
    position = np.arange(customer.size) - group_start
    reactivation = (position > 0) & (rng.random(customer.size) < REACTIVATION_SHARE)
    day = np.where(
        rng.random(customer.size) < FIRST_OF_MONTH_SHARE, 1, rng.integers(1, 32, customer.size)
    )
    interval = rng.choice(INTERVAL_MONTHS, size=customer.size, p=INTERVAL_SHARES)
    weight = rng.exponential(1.0, customer.size)
    pinned = np.full(customers, -1)
    # Showcase, always present: a long monthly subscription anchored on 31 January 2024, whose
    # periods must end on 29 February, then 31 March (the anchor is kept, never drifts).
    pinned[0], day[0], interval[0], weight[0] = SHOWCASE_MONTH, 31, 1, weight[0] + 10.0
    return Draws(
        customer=customer,
        group_start=group_start,
        is_last=position == per_customer[customer] - 1,
        reactivation=reactivation,
        interval=interval,
        weight=weight,
        gap_weight=rng.exponential(GAP_WEIGHT, customer.size) * reactivation,
        final_churn=rng.random(customers) < FINAL_CHURN_SHARE,
        tail_weight=rng.exponential(TAIL_WEIGHT, customers),
        start_draw=rng.random(customers),
        pinned_first_month=pinned,
        subscriptions_per_customer=per_customer,
        day=day,
    )


def cumsum_within(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum that restarts at each group (groups are contiguous)."""
    total = np.cumsum(values)
    return total - (total[group_start] - values[group_start])


def lay_out(draws: Draws, skew: float) -> Layout:
    """Place every subscription in time; a larger `skew` makes customers start earlier."""
    d = draws
    gaps_per_customer = np.bincount(d.customer, weights=d.reactivation).astype(np.int64)
    # Latest start month that still leaves at least a month per subscription and per gap.
    slack = np.clip(HISTORY_MONTHS - 1 - d.subscriptions_per_customer - gaps_per_customer, 0, None)
    first_month = np.floor(slack * d.start_draw**skew).astype(np.int64)
    first_month = np.where(d.pinned_first_month >= 0, d.pinned_first_month, first_month)
    window = (HISTORY_MONTHS - first_month)[d.customer]
    total_weight = (
        np.bincount(d.customer, weights=d.weight + d.gap_weight) + d.tail_weight * d.final_churn
    )[d.customer]
    months = window * d.weight / total_weight
    planned_open = d.is_last & ~d.final_churn[d.customer]
    # A yearly or quarterly plan needs room for at least one whole interval.
    interval = np.where((months >= d.interval) | planned_open, d.interval, 1)
    periods = np.maximum(1, np.floor(months / interval)).astype(np.int64)
    gap = np.where(
        d.reactivation, np.maximum(1, np.rint(window * d.gap_weight / total_weight)), 0
    ).astype(np.int64)
    length = periods * interval
    start_month = (
        first_month[d.customer]
        + cumsum_within(length, d.group_start)
        - length
        + cumsum_within(gap, d.group_start)
    )
    keep = start_month < HISTORY_MONTHS
    is_open = planned_open | (start_month + length >= HISTORY_MONTHS)
    open_periods = -((start_month - HISTORY_MONTHS) // interval)  # ceil((36 - start) / interval)
    billed = np.where(is_open, open_periods, periods) * keep
    return Layout(keep, start_month, interval, periods, is_open & keep, billed)


def reachable_invoices(draws: Draws) -> tuple[int, int]:
    """The fewest and most recurring invoices these customers and subscriptions can produce."""
    return lay_out(draws, MIN_SKEW).invoices, lay_out(draws, MAX_SKEW).invoices


def calibrate(draws: Draws, target_invoices: int) -> Layout:
    """The layout whose recurring invoice count is closest to `target_invoices` (bisection)."""
    low, high = np.log(MIN_SKEW), np.log(MAX_SKEW)
    best = lay_out(draws, 1.0)
    for _ in range(30):
        middle = (low + high) / 2
        layout = lay_out(draws, float(np.exp(middle)))
        if abs(layout.invoices - target_invoices) < abs(best.invoices - target_invoices):
            best = layout
        if abs(best.invoices - target_invoices) <= target_invoices // 1000:
            return best  # within 0.1%: close enough, and saves work on big requests
        if layout.invoices < target_invoices:
            low = middle
        else:
            high = middle
    for skew in (MIN_SKEW, MAX_SKEW):  # the ends, in case the target is out of reach
        layout = lay_out(draws, skew)
        if abs(layout.invoices - target_invoices) < abs(best.invoices - target_invoices):
            best = layout
    return best


# Calendar lookup tables by month index: converting datetime64 months to days is slow at 10M rows.
_MONTH_FIRST_DAY = (FIRST_MONTH + np.arange(241)).astype("datetime64[D]").astype(np.int64)
_MONTH_LENGTH = np.diff(_MONTH_FIRST_DAY)


def days_in_month(month_index: np.ndarray) -> np.ndarray:
    """Number of days of each month index (0..239)."""
    return _MONTH_LENGTH[month_index]


def month_day(month_index: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The date `day` of each month index, clamped to the month's last day (31 Jan → 28/29 Feb)."""
    days = _MONTH_FIRST_DAY[month_index] + np.minimum(day, _MONTH_LENGTH[month_index]) - 1
    return days.astype("datetime64[D]")


def anchor_days(draws: Draws, layout: Layout) -> np.ndarray:
    """Anchor day of each subscription.

    A subscription that follows a switch starts the day the previous one ended, so its anchor is
    the previous anchor clamped to the month of the switch (a 31st becomes a 30th in April and stays
    so). That is a running minimum within each run of switches, computed in one numpy pass by
    shifting each run below all earlier ones.
    """
    run_start = (np.arange(draws.customer.size) == draws.group_start) | draws.reactivation
    run = np.cumsum(run_start)
    month_length = days_in_month(layout.start_month)
    value = np.where(run_start, np.minimum(draws.day, month_length), month_length)
    shifted = value - run * 64  # every later run lies below every earlier one
    return np.minimum.accumulate(shifted) + run * 64
