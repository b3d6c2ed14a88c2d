"""The VPC both platforms share: two AZs, public subnets for load balancers, private ones for tasks and pods.

Tasks and pods in the private subnets reach ECR, CloudWatch and S3 through NAT (and a free S3 gateway endpoint that
keeps image-layer and model downloads off the NAT bill). With `natGateways: none` there is no NAT: the private
subnets have no way out, and only ECS tasks placed in the public subnets with public addresses can run.

Subnet role tags let the AWS Load Balancer Controller find where to put internet-facing and internal load balancers;
since controller v2.1.1 no `kubernetes.io/cluster/<name>` tag is needed, so the network knows nothing of the EKS
cluster.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from stacks.config import SharedSettings

AZ_COUNT = 2


def subnet_cidrs(vpc_cidr: str) -> tuple[list[str], list[str]]:
    """Public and private /20 blocks, one per AZ: public at the start of the /16, private from the middle."""
    blocks = [str(block) for block in ipaddress.ip_network(vpc_cidr).subnets(new_prefix=20)]
    return blocks[:AZ_COUNT], blocks[8 : 8 + AZ_COUNT]


def pick_zones(region: str) -> list[str]:
    """The first two available AZs of the region, or a clear error if there are fewer."""
    zones = sorted(aws.get_availability_zones(state="available").names)
    if len(zones) < AZ_COUNT:
        raise ValueError(f"region {region} has {len(zones)} available AZs; the VPC needs {AZ_COUNT}")
    return zones[:AZ_COUNT]


#: NAT gateways of each `natGateways` setting.
_NAT_COUNTS = {"none": 0, "single": 1, "perAz": AZ_COUNT}


class Network(pulumi.ComponentResource):
    """VPC, subnets, routing and NAT; exposes the ids the platforms need."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    #: Where the load balancers' nodes are: the only proxies the API trusts to name the client.
    public_subnet_cidrs: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        settings: SharedSettings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("diabetes:shared:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags_for("network")
        zones = pick_zones(settings.region)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=settings.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": settings.name},
            opts=child,
        )
        # Adopt the default security group and strip its rules, so nothing can use it by accident. Untagged: AWS makes
        # it without tags, and the CI deploy role may tag only what it creates or what carries the stack's tags already
        # (a role that could tag any group could claim another workload's; stacks/ops/ci_roles.py).
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={**tags, "Name": settings.name}, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{settings.name}-public"},
            opts=child,
        )

        public, private = _subnets(name, settings, vpc, zones, public_rt, tags, child)
        nats = _nat_gateways(name, settings, public, igw, tags, self)
        private_rts = _private_route_tables(name, settings, vpc, private, nats, tags, child)

        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{settings.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags={**tags, "Name": f"{settings.name}-s3"},
            opts=child,
        )

        self.vpc_id = vpc.id
        self.public_subnet_ids = [subnet.id for subnet in public]
        self.public_subnet_cidrs = [subnet.cidr_block for subnet in public]
        self.private_subnet_ids = [subnet.id for subnet in private]
        self.register_outputs({"vpcId": self.vpc_id})


#: Load balancers discover their subnets by these role tags (internet-facing vs internal).
_ROLE_TAGS = {"public": "kubernetes.io/role/elb", "private": "kubernetes.io/role/internal-elb"}


def _subnets(
    name: str,
    settings: SharedSettings,
    vpc: aws.ec2.Vpc,
    zones: list[str],
    public_rt: aws.ec2.RouteTable,
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.Subnet]]:
    """A public and a private subnet in each zone (no public IPs on launch); the public ones route to the internet."""
    public_cidrs, private_cidrs = subnet_cidrs(settings.vpc_cidr)
    cidrs = {"public": public_cidrs, "private": private_cidrs}
    subnets: dict[str, list[aws.ec2.Subnet]] = {tier: [] for tier in _ROLE_TAGS}
    for index, zone in enumerate(zones):
        for tier, role_tag in _ROLE_TAGS.items():
            subnets[tier].append(
                aws.ec2.Subnet(
                    f"{name}-{tier}-{index}",
                    vpc_id=vpc.id,
                    cidr_block=cidrs[tier][index],
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={**tags, "Name": f"{settings.name}-{tier}-{zone}", "Tier": tier, role_tag: "1"},
                    opts=child,
                )
            )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-{index}", subnet_id=subnets["public"][index].id, route_table_id=public_rt.id, opts=child
        )
    return subnets["public"], subnets["private"]


def _nat_gateways(
    name: str,
    settings: SharedSettings,
    public: list[aws.ec2.Subnet],
    igw: aws.ec2.InternetGateway,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> list[aws.ec2.NatGateway]:
    """None, one, or one per zone (`natGateways`), each in a public subnet with its own address."""
    nats = []
    for index in range(_NAT_COUNTS[settings.nat_gateways]):
        eip = aws.ec2.Eip(
            f"{name}-nat-{index}",
            domain="vpc",
            tags={**tags, "Name": f"{settings.name}-nat-{index}"},
            opts=pulumi.ResourceOptions(parent=parent),
        )
        nats.append(
            aws.ec2.NatGateway(
                f"{name}-nat-{index}",
                allocation_id=eip.id,
                subnet_id=public[index].id,
                tags={**tags, "Name": f"{settings.name}-nat-{index}"},
                opts=pulumi.ResourceOptions(parent=parent, depends_on=[igw]),
            )
        )
    return nats


def _private_route_tables(
    name: str,
    settings: SharedSettings,
    vpc: aws.ec2.Vpc,
    private: list[aws.ec2.Subnet],
    nats: list[aws.ec2.NatGateway],
    tags: dict[str, str],
    child: pulumi.ResourceOptions,
) -> list[aws.ec2.RouteTable]:
    """One route table per private subnet: to the internet through a NAT gateway when there is one, else nowhere."""
    route_tables = []
    for index, subnet in enumerate(private):
        route_table = aws.ec2.RouteTable(
            f"{name}-private-{index}",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[index % len(nats)].id)]
            if nats
            else [],
            tags={**tags, "Name": f"{settings.name}-private-{index}"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private-{index}", subnet_id=subnet.id, route_table_id=route_table.id, opts=child
        )
        route_tables.append(route_table)
    return route_tables
