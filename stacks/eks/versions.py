"""When each EKS Kubernetes version leaves standard support, and the warning a preview gives before it does.

Past the end of standard support a cluster bills extended support, six times the standard hourly price (the
prices are in `stacks.costs.PRICES`). The dates are AWS's "Amazon EKS Kubernetes release calendar"
(docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html, "End of standard support"), as listed on
2026-12-06 by endoflife.date/amazon-eks, which tracks that page; add a row when AWS releases a version, and move the
dev stack before its date.
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


def support_warning(version: str, today: dt.date) -> str | None:
    """The warning for `version` on `today`, or None while its standard support has more than WARN_DAYS left."""
    end = STANDARD_SUPPORT_END[version]
    left = (end - today).days
    if left > WARN_DAYS:
        return None
    newest = max(STANDARD_SUPPORT_END, key=lambda v: STANDARD_SUPPORT_END[v])
    rates = f"{dollars(PRICES['eks_extended_hour'].usd)}/h instead of {dollars(PRICES['eks_standard_hour'].usd)}/h"
    if left < 0:
        when = f"ended on {end.isoformat()}: the cluster bills extended support ({rates})"
    else:
        when = f"ends on {end.isoformat()} ({left} days): after it the cluster bills extended support ({rates})"
    return (
        f"EKS {version} standard support {when}. Upgrade one minor version at a time: set diabetes-eks:eks.version "
        f"to the next one (newest in stacks/eks/versions.py: {newest}) and run `pulumi up -C stacks/eks`."
    )
