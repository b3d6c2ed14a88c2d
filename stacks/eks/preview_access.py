"""What the CI preview role may do in the cluster: read what the EKS view policy shows, and send server-side dry runs
of the app's own objects in the app namespace, never a real write and nothing else.

pulumi-kubernetes previews a new or changed object with a server-side dry run (a create or patch with
`dryRun=All`), which Kubernetes authorizes exactly like the write itself. Where that dry run is forbidden, the provider
falls back to a client-side preview of the object (provider.go, Create and Update with `req.GetPreview()` and
`apierrors.IsForbidden`, since pulumi-kubernetes #2419), so a view-only role previews every object, less exactly.
The app's objects, which most pull requests change, get the exact server-side preview:

- the viewers' access entries carry the group `diabetes:previewers`, bound by a RoleBinding in the app namespace
  (not a ClusterRoleBinding) to create/patch/update on the app's namespaced kinds only;
- a ValidatingAdmissionPolicy (GA since Kubernetes 1.30), created before the grant, denies every request of that group
  that is not a dry run.

The group gets nothing on `rbac.authorization.k8s.io` or `admissionregistration.k8s.io`: the API server never applies
API-created admission policies to admission policies and bindings themselves (generic/plugin.go,
`isExcludedFromAPIHooks`), so a grant there would let the group switch its own guard off and then write for real.
Cluster-scoped objects and everything outside the app namespace preview client-side.
"""

from __future__ import annotations

from typing import Any

PREVIEW_GROUP = "diabetes:previewers"
NAME = "diabetes-preview-dry-run"
#: The app's namespaced kinds (stacks/eks/manifests.py), by API group: the only ones the group may dry-run.
APP_KINDS: dict[str, tuple[str, ...]] = {
    "": ("serviceaccounts", "services"),
    "apps": ("deployments",),
    "autoscaling": ("horizontalpodautoscalers",),
    "policy": ("poddisruptionbudgets",),
    "networking.k8s.io": ("ingresses",),
}
#: API groups a preview grant must never touch (the guard, and the rights themselves).
NEVER_GRANTED = ("rbac.authorization.k8s.io", "admissionregistration.k8s.io")
#: True only for a dry run: a request without the field, or with false, is a real write.
DRY_RUN_ONLY = "has(request.dryRun) && request.dryRun == true"
IN_GROUP = f"'{PREVIEW_GROUP}' in request.userInfo.groups"
_META = {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "pulumi"}}


def guard_manifests() -> list[dict[str, Any]]:
    """The admission policy and its binding (cluster-scoped; created before any grant, by an admin only)."""
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": _META,
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
            "metadata": _META,
            "spec": {"policyName": NAME, "validationActions": ["Deny"]},
        },
    ]


def grant_manifests(namespace: str) -> list[dict[str, Any]]:
    """The Role and RoleBinding of the app namespace: the dry-run verbs on the app's kinds there, nothing else."""
    meta = {**_META, "namespace": namespace}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [
                {"apiGroups": [group], "resources": list(resources), "verbs": ["create", "patch", "update"]}
                for group, resources in APP_KINDS.items()
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": PREVIEW_GROUP}],
        },
    ]
