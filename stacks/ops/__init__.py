"""Operations that CI and operators run around `pulumi up` (`python -m stacks.ops --help`).

One module per job: `ci_roles` (the CI roles' trust and permission policies), `model_digest` (the digest that pins
a model directory), `promote` (retag an image by digest), `scan` (ECR scan findings of pushed images), `verify`
(wait for a healthy ECS or EKS rollout), `render` (the app's Kubernetes objects as YAML). Credentials, region and
endpoint come from the usual AWS_* variables (AWS_ENDPOINT_URL for a test server).
"""

from __future__ import annotations


class OpsError(Exception):
    """An operation failed; the message says what, where and what to do next."""


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError (empty for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
