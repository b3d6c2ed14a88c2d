"""EC2 networking: VPC, subnets, gateways, routes, the S3 endpoint, security groups and their rules."""

from __future__ import annotations

from typing import Any

from tests.stacks.harness import REGION
from tests.stacks.replay.calls import Clients, Declared, Replayer, ec2_tags, renamed


def _arn(clients: Clients, kind: str, resource_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:{clients.account}:{kind}/{resource_id}"


def vpc(clients: Clients, d: Declared) -> dict[str, Any]:
    ec2 = clients("ec2")
    vpc_id = ec2.create_vpc(CidrBlock=d["cidrBlock"], TagSpecifications=ec2_tags("vpc", d.tags))["Vpc"]["VpcId"]
    for key in ("enableDnsSupport", "enableDnsHostnames"):
        if key in d.inputs:
            ec2.modify_vpc_attribute(VpcId=vpc_id, **{key[0].upper() + key[1:]: {"Value": d[key]}})
    return {"id": vpc_id, "arn": _arn(clients, "vpc", vpc_id)}


def default_security_group(clients: Clients, d: Declared) -> dict[str, Any]:
    """Pulumi adopts the VPC's default group and removes every rule it is not given (here: all of them)."""
    ec2 = clients("ec2")
    filters = [{"Name": "vpc-id", "Values": [d["vpcId"]]}, {"Name": "group-name", "Values": ["default"]}]
    (group,) = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    for rules, revoke in ((group["IpPermissions"], "ingress"), (group["IpPermissionsEgress"], "egress")):
        assert not d.get(revoke), f"the replay adopts default groups without {revoke} rules"
        if rules:
            getattr(ec2, f"revoke_security_group_{revoke}")(GroupId=group["GroupId"], IpPermissions=rules)
    if d.tags:
        ec2.create_tags(Resources=[group["GroupId"]], Tags=[{"Key": k, "Value": v} for k, v in d.tags.items()])
    return {"id": group["GroupId"], "arn": _arn(clients, "security-group", group["GroupId"])}


def internet_gateway(clients: Clients, d: Declared) -> dict[str, Any]:
    ec2 = clients("ec2")
    gateway = ec2.create_internet_gateway(TagSpecifications=ec2_tags("internet-gateway", d.tags))["InternetGateway"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=d["vpcId"])
    return {"id": gateway["InternetGatewayId"], "arn": _arn(clients, "internet-gateway", gateway["InternetGatewayId"])}


ROUTE_FIELDS = {"cidrBlock": "DestinationCidrBlock", "gatewayId": "GatewayId", "natGatewayId": "NatGatewayId"}


def route_table(clients: Clients, d: Declared) -> dict[str, Any]:
    ec2 = clients("ec2")
    table = ec2.create_route_table(VpcId=d["vpcId"], TagSpecifications=ec2_tags("route-table", d.tags))["RouteTable"]
    for route in d.get("routes", []):
        ec2.create_route(RouteTableId=table["RouteTableId"], **renamed(route, ROUTE_FIELDS))
    return {"id": table["RouteTableId"], "arn": _arn(clients, "route-table", table["RouteTableId"])}


def subnet(clients: Clients, d: Declared) -> dict[str, Any]:
    ec2 = clients("ec2")
    created = ec2.create_subnet(
        VpcId=d["vpcId"],
        CidrBlock=d["cidrBlock"],
        AvailabilityZone=d["availabilityZone"],
        TagSpecifications=ec2_tags("subnet", d.tags),
    )["Subnet"]
    ec2.modify_subnet_attribute(SubnetId=created["SubnetId"], MapPublicIpOnLaunch={"Value": d["mapPublicIpOnLaunch"]})
    return {"id": created["SubnetId"], "arn": created["SubnetArn"]}


def route_table_association(clients: Clients, d: Declared) -> dict[str, Any]:
    answer = clients("ec2").associate_route_table(RouteTableId=d["routeTableId"], SubnetId=d["subnetId"])
    return {"id": answer["AssociationId"]}


def eip(clients: Clients, d: Declared) -> dict[str, Any]:
    answer = clients("ec2").allocate_address(Domain=d["domain"], TagSpecifications=ec2_tags("elastic-ip", d.tags))
    return {"id": answer["AllocationId"], "allocationId": answer["AllocationId"], "publicIp": answer["PublicIp"]}


def nat_gateway(clients: Clients, d: Declared) -> dict[str, Any]:
    gateway = clients("ec2").create_nat_gateway(
        AllocationId=d["allocationId"], SubnetId=d["subnetId"], TagSpecifications=ec2_tags("natgateway", d.tags)
    )["NatGateway"]
    return {"id": gateway["NatGatewayId"]}


def vpc_endpoint(clients: Clients, d: Declared) -> dict[str, Any]:
    endpoint = clients("ec2").create_vpc_endpoint(
        VpcId=d["vpcId"],
        ServiceName=d["serviceName"],
        VpcEndpointType=d["vpcEndpointType"],
        RouteTableIds=d["routeTableIds"],
        TagSpecifications=ec2_tags("vpc-endpoint", d.tags),
    )["VpcEndpoint"]
    return {"id": endpoint["VpcEndpointId"], "arn": _arn(clients, "vpc-endpoint", endpoint["VpcEndpointId"])}


def security_group(clients: Clients, d: Declared) -> dict[str, Any]:
    """A group with no rules of its own: like the provider, remove the allow-all egress rule AWS adds to a new
    group (the rules are resources of their own)."""
    ec2 = clients("ec2")
    name = d.name()
    group_id = ec2.create_security_group(
        GroupName=name,
        Description=d["description"],
        VpcId=d["vpcId"],
        TagSpecifications=ec2_tags("security-group", d.tags),
    )["GroupId"]
    ec2.revoke_security_group_egress(
        GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    return {"id": group_id, "arn": _arn(clients, "security-group", group_id), "name": name}


def _security_group_rule(direction: str) -> Replayer:
    def replay(clients: Clients, d: Declared) -> dict[str, Any]:
        permission: dict[str, Any] = {
            "IpProtocol": d["ipProtocol"],
            "FromPort": d["fromPort"],
            "ToPort": d["toPort"],
        }
        described = {"Description": d["description"]} if "description" in d.inputs else {}
        if "cidrIpv4" in d.inputs:
            permission["IpRanges"] = [{"CidrIp": d["cidrIpv4"], **described}]
        else:
            permission["UserIdGroupPairs"] = [{"GroupId": d["referencedSecurityGroupId"], **described}]
        answer = getattr(clients("ec2"), f"authorize_security_group_{direction}")(
            GroupId=d["securityGroupId"],
            IpPermissions=[permission],
            TagSpecifications=ec2_tags("security-group-rule", d.tags),
        )
        (rule,) = answer["SecurityGroupRules"]
        rule_id = rule["SecurityGroupRuleId"]
        return {"id": rule_id, "arn": _arn(clients, "security-group-rule", rule_id)}

    return replay


REPLAYERS: dict[str, Replayer] = {
    "aws:ec2/vpc:Vpc": vpc,
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": default_security_group,
    "aws:ec2/internetGateway:InternetGateway": internet_gateway,
    "aws:ec2/routeTable:RouteTable": route_table,
    "aws:ec2/subnet:Subnet": subnet,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": route_table_association,
    "aws:ec2/eip:Eip": eip,
    "aws:ec2/natGateway:NatGateway": nat_gateway,
    "aws:ec2/vpcEndpoint:VpcEndpoint": vpc_endpoint,
    "aws:ec2/securityGroup:SecurityGroup": security_group,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _security_group_rule("ingress"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _security_group_rule("egress"),
}
