"""What the CI preview role may do in the cluster: read everything the EKS view policy shows, and send server-side
dry runs of the objects this program manages, never a real write.

pulumi-kubernetes previews a new or changed object with a server-side dry run (a create or patch with
`dryRun=All`), and Kubernetes authorizes a dry run exactly like the write itself. A view-only preview role therefore
fails on the first new object; giving it real write rights would let any pull request's preview change the cluster.
So the viewers' access entries carry the group `diabetes:previewers`, bound to the create/patch/update verbs on the
program's kinds only, and a ValidatingAdmissionPolicy (GA since Kubernetes 1.30) denies every request of that group
that is not a dry run.
"""

from __future__ import annotations

from typing import Any

PREVIEW_GROUP = "diabetes:previewers"
NAME = "diabetes-preview-dry-run"
#: The kinds the program creates, by API group (Helm releases preview without the cluster).
MANAGED: dict[str, tuple[str, ...]] = {
    "": ("namespaces", "serviceaccounts", "configmaps", "services"),
    "apps": ("deployments",),
    "autoscaling": ("horizontalpodautoscalers",),
    "policy": ("poddisruptionbudgets",),
    "networking.k8s.io": ("ingresses",),
    "rbac.authorization.k8s.io": ("clusterroles", "clusterrolebindings"),
    "admissionregistration.k8s.io": ("validatingadmissionpolicies", "validatingadmissionpolicybindings"),
}
#: True only for a dry run: a request without the field, or with false, is a real write.
DRY_RUN_ONLY = "has(request.dryRun) && request.dryRun == true"
IN_GROUP = f"'{PREVIEW_GROUP}' in request.userInfo.groups"


def preview_manifests() -> list[dict[str, Any]]:
    """The admission policy and its binding first (so the grant never exists without the guard), then the role."""
    meta = {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "pulumi"}}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": meta,
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["*"],
                            "apiVersions": ["*"],
                            "operations": ["CREATE", "UPDATE", "DELETE", "CONNECT"],
                            "resources": ["*"],
                        }
                    ]
                },
                "matchConditions": [{"name": "previewers", "expression": IN_GROUP}],
                "validations": [
                    {
                        "expression": DRY_RUN_ONLY,
                        "message": f"{PREVIEW_GROUP} may only send dry runs (pulumi preview); writes need an admin",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": meta,
            "spec": {"policyName": NAME, "validationActions": ["Deny"]},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta,
            "rules": [
                {"apiGroups": [group], "resources": list(resources), "verbs": ["create", "patch", "update"]}
                for group, resources in MANAGED.items()
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": PREVIEW_GROUP}],
        },
    ]
