"""IAM: roles (moto validates the trust policy), inline policies (moto validates the document), managed-policy
attachments (the policy must exist: moto loads AWS's managed policies for the replay's account) and OIDC providers."""

from __future__ import annotations

from typing import Any

from tests.stacks.replay.calls import Clients, Declared, Replayer, tag_list


def role(clients: Clients, d: Declared) -> dict[str, Any]:
    name = d.name()
    created = clients("iam").create_role(
        RoleName=name,
        Path=d["path"],
        PermissionsBoundary=d["permissionsBoundary"],
        AssumeRolePolicyDocument=d["assumeRolePolicy"],
        Tags=tag_list(d.tags),
    )["Role"]
    return {"id": name, "name": name, "arn": created["Arn"], "uniqueId": created["RoleId"]}


def role_policy(clients: Clients, d: Declared) -> dict[str, Any]:
    name = d.name()
    clients("iam").put_role_policy(RoleName=d["role"], PolicyName=name, PolicyDocument=d["policy"])
    return {"id": f"{d['role']}:{name}", "name": name}


def role_policy_attachment(clients: Clients, d: Declared) -> dict[str, Any]:
    clients("iam").attach_role_policy(RoleName=d["role"], PolicyArn=d["policyArn"])
    return {"id": f"{d['role']}/{d['policyArn']}"}


def open_id_connect_provider(clients: Clients, d: Declared) -> dict[str, Any]:
    arn = clients("iam").create_open_id_connect_provider(
        Url=d["url"], ClientIDList=d["clientIdLists"], Tags=tag_list(d.tags)
    )["OpenIDConnectProviderArn"]
    return {"id": arn, "arn": arn}


REPLAYERS: dict[str, Replayer] = {
    "aws:iam/role:Role": role,
    "aws:iam/rolePolicy:RolePolicy": role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": role_policy_attachment,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": open_id_connect_provider,
}
