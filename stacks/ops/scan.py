"""ECR scan findings of a pushed image: wait for the scan on push, then refuse blocking severities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from stacks.ops import OpsError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


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
    if state in {"FAILED", "UNSUPPORTED_IMAGE"}:
        raise OpsError(f"scan of {repository}:{tag} {state}: {status.get('description', 'no description')}")
    if state != "COMPLETE":
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
