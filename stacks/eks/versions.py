"""When each EKS Kubernetes version leaves standard support, and the warning a preview gives before it does.

Past the end of standard support a cluster bills extended support, six times the standard hourly price (the
prices are in `stacks.costs.PRICES`). The dates are AWS's "Amazon EKS Kubernetes release calendar"
(docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html, "End of standard support"), as listed on
2026-12-06 by endoflife.date/amazon-eks, which tracks that page; add a row when AWS releases a version, and move the
dev stack before its date. 1.36 has no row: its dates could not be checked against AWS's calendar from here. A version
past its end is refused unless `eks.allowExtendedSupport` says the bill is wanted.
"""

from __future__ import annotations

import datetime as dt

from stacks.costs import PRICES, dollars

#: Kubernetes minor version -> the last day of EKS standard support (UTC).
STANDARD_SUPPORT_END: dict[str, dt.date] = {
    "1.32": dt.date(2026, 3, 23),
    "1.33": dt.date(2026, 7, 29),
    "1.34": dt.date(2026, 12, 2),
    "1.35": dt.date(2027, 3, 27),
}
#: How long before the end a preview starts warning (time to plan and test an upgrade).
WARN_DAYS = 90


def today() -> dt.date:
    """Today in UTC, the time zone of AWS's dates."""
    return dt.datetime.now(dt.UTC).date()


def next_version(version: str) -> str:
    """What to upgrade to: the next minor version if the table has it, else what to do first."""
    major, minor = version.split(".")
    following = f"{major}.{int(minor) + 1}"
    if following in STANDARD_SUPPORT_END:
        return f"set diabetes-eks:eks.version to {following}"
    return (
        f"add {following} to stacks/eks/versions.py with its dates from AWS's EKS release calendar (no newer version "
        f"is listed), then set diabetes-eks:eks.version to it"
    )


def past_standard_support(version: str, today: dt.date) -> bool:
    """Whether `version` bills extended support on `today`."""
    return STANDARD_SUPPORT_END[version] < today


def support_warning(version: str, today: dt.date) -> str | None:
    """The warning for `version` on `today`, or None while its standard support has more than WARN_DAYS left."""
    end = STANDARD_SUPPORT_END[version]
    left = (end - today).days
    if left > WARN_DAYS:
        return None
    rates = f"{dollars(PRICES['eks_extended_hour'].usd)}/h instead of {dollars(PRICES['eks_standard_hour'].usd)}/h"
    if left < 0:
        when = f"ended on {end.isoformat()}: the cluster bills extended support ({rates})"
    else:
        when = f"ends on {end.isoformat()} ({left} days): after it the cluster bills extended support ({rates})"
    return (
        f"EKS {version} standard support {when}. Upgrade one minor version at a time: {next_version(version)}, and "
        "run `pulumi up -C stacks/eks`."
    )
