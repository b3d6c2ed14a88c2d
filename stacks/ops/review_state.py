"""Review a stack's exported state before an administrator runs `pulumi destroy` or `refresh` on it.

Both run the providers recorded in the state, with the configuration recorded there, under the credentials of
whoever runs them. The CI deploy role may write its environment's state, so it could record a Kubernetes provider
whose kubeconfig `exec` runs any command, or an AWS provider that reads a credential process: the next admin
`destroy` would run it as the admin. This check accepts only the providers the programs create, configured as the
programs configure them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Provider inputs the programs may record, by provider package; anything else is refused.
ALLOWED_INPUTS: dict[str, frozenset[str]] = {
    "aws": frozenset(
        {"region", "version", "skipCredentialsValidation", "skipRegionValidation", "skipMetadataApiCheck"}
    ),
    "kubernetes": frozenset({"kubeconfig", "version"}),
    "eks": frozenset({"version"}),
}
#: The only environment variable pulumi-eks's kubeconfig gives its exec command.
EXEC_ENV = frozenset({"KUBERNETES_EXEC_INFO"})
#: How `pulumi stack export` writes a secret it was not asked to show.
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a marker, not a secret


def _kubeconfig_problems(name: str, value: Any, cluster: str) -> list[str]:
    if isinstance(value, Mapping) and SECRET_SIGNATURE in value:
        return [f"{name}: the kubeconfig is encrypted in this export; run `pulumi stack export --show-secrets`"]
    try:
        config = json.loads(value) if isinstance(value, str) else value
        users = config["users"]
    except (TypeError, ValueError, KeyError):
        return [f"{name}: the kubeconfig is not one the programs write (no users)"]
    problems = []
    expected = ["eks", "get-token", "--cluster-name", cluster, "--output", "json"]
    for user in users:
        auth = user.get("user", {})
        extra = sorted(set(auth) - {"exec"})
        if extra:
            problems.append(f"{name}: user {user.get('name')} authenticates with {extra}, not `aws eks get-token`")
        run = auth.get("exec") or {}
        if run.get("command") != "aws" or run.get("args") != expected:
            problems.append(
                f"{name}: user {user.get('name')} runs {run.get('command')!r} {run.get('args')!r}, not "
                f"`aws {' '.join(expected)}`"
            )
        env = {item.get("name") for item in run.get("env") or []}
        if env - EXEC_ENV:
            problems.append(f"{name}: the exec command gets environment variables {sorted(env - EXEC_ENV)}")
    for entry in config.get("clusters", []):
        server = str(entry.get("cluster", {}).get("server", ""))
        if not (server.startswith("https://") and server.endswith(".eks.amazonaws.com")):
            problems.append(f"{name}: the kubeconfig points at {server!r}, not an EKS endpoint")
    return problems


def state_problems(export: Mapping[str, Any], stack: str, project: str = "diabetes") -> list[str]:
    """Why an exported state must not be destroyed or refreshed with an administrator's credentials; [] if it may."""
    problems = []
    cluster = f"{project}-{stack}-eks"
    for resource in export.get("deployment", {}).get("resources") or []:
        typ = str(resource.get("type", ""))
        if not typ.startswith("pulumi:providers:"):
            continue
        name, package = str(resource.get("urn", typ)), typ.removeprefix("pulumi:providers:")
        inputs = resource.get("inputs") or {}
        if package not in ALLOWED_INPUTS:
            problems.append(f"{name}: a provider of package {package!r}, which no program of this project uses")
            continue
        unexpected = sorted(set(inputs) - ALLOWED_INPUTS[package])
        if unexpected:
            problems.append(f"{name}: provider configuration {unexpected} the programs never set")
        if package == "kubernetes":
            problems += _kubeconfig_problems(name, inputs.get("kubeconfig"), cluster)
    return problems
