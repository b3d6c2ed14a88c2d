"""ECR scan findings of a pushed image: wait for the scan on push, then refuse blocking severities.

Under basic scanning a finished scan is COMPLETE; under enhanced (Amazon Inspector) scanning it is ACTIVE (continuous
scanning on, findings available). Either way `imageScanFindings.findingSeverityCounts` holds the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from stacks.ops import OpsError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

#: Scan states with findings to read: basic scanning's COMPLETE, enhanced (Inspector) continuous scanning's ACTIVE.
DONE = frozenset({"COMPLETE", "ACTIVE"})
#: States waiting cannot change: the image will not be scanned (or its findings cannot be read), so the gate fails.
NEVER = frozenset(
    {
        "FAILED",
        "UNSUPPORTED_IMAGE",
        "SCAN_ELIGIBILITY_EXPIRED",
        "FINDINGS_UNAVAILABLE",
        "LIMIT_EXCEEDED",
        "IMAGE_ARCHIVED",
        "IMAGE_SIZE_EXCEEDED",
    }
)


def scan_problems(ecr: ECRClient, repository: str, tag: str, blocking: Sequence[str]) -> list[str]:
    """One look at the scan: ['scan ... in progress'] while it runs, the blocking counts once it is done, [] if clean.

    Raises OpsError when the scan failed or the image does not exist: waiting cannot help then."""
    try:
        found = ecr.describe_image_scan_findings(repositoryName=repository, imageId={"imageTag": tag})
    except ecr.exceptions.ScanNotFoundException:
        return [f"{repository}:{tag} has no scan yet (scan on push starts after the push)"]
    except ecr.exceptions.ImageNotFoundException:
        raise OpsError(f"{repository}:{tag} does not exist: push it before checking its scan") from None
    status = found.get("imageScanStatus", {})
    state = status.get("status")
    if state in NEVER:
        raise OpsError(
            f"scan of {repository}:{tag} is {state}: {status.get('description', 'no description')}; the image has no "
            "findings to check, so it is not released (re-push it, or see the registry's scanning settings)"
        )
    if state not in DONE:
        return [f"scan of {repository}:{tag} is {state}"]
    counts = {
        str(key): count for key, count in found.get("imageScanFindings", {}).get("findingSeverityCounts", {}).items()
    }
    blocked = {severity: counts[severity] for severity in blocking if counts.get(severity)}
    if blocked:
        summary = ", ".join(f"{count} {severity}" for severity, count in blocked.items())
        raise OpsError(
            f"{repository}:{tag} has {summary} finding(s); see `aws ecr describe-image-scan-findings "
            f"--repository-name {repository} --image-id imageTag={tag}` and rebuild on patched packages"
        )
    return []
