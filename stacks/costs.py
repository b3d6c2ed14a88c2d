"""The project's one cost model: AWS unit prices (us-east-1, on-demand) with their source and date, and the monthly
cost of a stack computed from its typed settings.

Every page that states a price renders it from here (docs/_ext/project_tables.py writes the tables and the
`{{ cost_... }}` substitutions), and the EKS support warning quotes the same prices, so no two pages can disagree.
Quantities come from the settings the stacks are deployed with (NAT gateways, task sizes and counts, public
addresses); what traffic a stack serves is an assumption, named as such in each line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks.config import (
    EcsStackSettings,
    EksStackSettings,
    PlatformSettings,
    ServiceSize,
    SharedSettings,
    StackSettings,
    WafSettings,
    read_stack_file,
)
from stacks.network import AZ_COUNT

#: Hours in the month AWS's pricing examples use.
HOURS_PER_MONTH = 730
REGION = "us-east-1"


@dataclass(frozen=True)
class UnitPrice:
    """One on-demand list price, where it was read and when."""

    usd: float
    unit: str
    source: str
    checked: str


_FARGATE = "https://aws.amazon.com/fargate/pricing/ (Linux/x86, as quoted 2026-06 by factualminds.com and vantage.sh)"
_VPC = "https://aws.amazon.com/vpc/pricing/ (NAT gateway and public IPv4 tabs, as quoted 2026-02/03 by cloudburn.io)"
PRICES: dict[str, UnitPrice] = {
    "fargate_vcpu_hour": UnitPrice(0.04048, "per vCPU-hour", _FARGATE, "2026-06"),
    "fargate_gb_hour": UnitPrice(0.004445, "per GB-hour", _FARGATE, "2026-06"),
    "alb_hour": UnitPrice(
        0.0225, "per ALB-hour", "https://aws.amazon.com/elasticloadbalancing/pricing/ (cloud-horizons.com)", "2026-05"
    ),
    "alb_lcu_hour": UnitPrice(
        0.008, "per LCU-hour", "https://aws.amazon.com/elasticloadbalancing/pricing/ (cloud-horizons.com)", "2026-05"
    ),
    "nat_hour": UnitPrice(0.045, "per NAT gateway-hour", _VPC, "2026-03"),
    "nat_gb": UnitPrice(0.045, "per GB processed", _VPC, "2026-03"),
    "public_ipv4_hour": UnitPrice(0.005, "per public IPv4 address-hour", _VPC, "2026-02"),
    "eks_standard_hour": UnitPrice(
        0.10, "per cluster-hour, standard support", "https://aws.amazon.com/eks/pricing/", "2026-12"
    ),
    "eks_extended_hour": UnitPrice(
        0.60, "per cluster-hour, extended support", "https://aws.amazon.com/eks/pricing/", "2026-12"
    ),
    "ecr_gb_month": UnitPrice(0.10, "per GB-month stored", "https://aws.amazon.com/ecr/pricing/", "2026-12"),
    "logs_gb": UnitPrice(0.50, "per GB ingested (standard)", "https://aws.amazon.com/cloudwatch/pricing/", "2026-12"),
    "metric_month": UnitPrice(
        0.30, "per custom metric-month (first 10,000)", "https://aws.amazon.com/cloudwatch/pricing/", "2026-12"
    ),
    "alarm_month": UnitPrice(
        0.10, "per standard-resolution alarm metric-month", "https://aws.amazon.com/cloudwatch/pricing/", "2026-12"
    ),
    "kms_key_month": UnitPrice(1.0, "per customer managed key-month", "https://aws.amazon.com/kms/pricing/", "2026-12"),
    "waf_acl_month": UnitPrice(5.0, "per web ACL-month", "https://aws.amazon.com/waf/pricing/ (c3x.dev)", "2026-06"),
    "waf_rule_month": UnitPrice(1.0, "per rule-month", "https://aws.amazon.com/waf/pricing/ (c3x.dev)", "2026-06"),
    "waf_million_requests": UnitPrice(
        0.60, "per million requests", "https://aws.amazon.com/waf/pricing/ (c3x.dev)", "2026-06"
    ),
}

#: Assumptions of a low-traffic stack (a trial, a dev stack): each line that uses one says so.
ASSUMED_LCU = 1.0
ASSUMED_NAT_GB = 5.0
ASSUMED_LOG_GB = 1.0
#: EKS control-plane logs (api, audit, authenticator) of an idle cluster.
ASSUMED_EKS_LOG_GB = 3.0
#: Compressed image sizes in ECR (api with LightGBM and the model, ui with Streamlit).
ASSUMED_IMAGE_GB = 0.5
ASSUMED_REQUESTS_MILLION = 1.0
#: Container Insights' metrics, billed as custom metrics: an estimate per cluster and per service.
ASSUMED_INSIGHTS_METRICS = (10, 10)
#: Pods the EKS platform runs besides the app: CoreDNS (2, pulumi-eks's add-on), the Load Balancer Controller (2),
#: metrics-server (1); each fits Fargate's smallest size (its requests plus Fargate's 256 MB stay under 0.5 GB).
EKS_SYSTEM_PODS = 5
#: Target-tracking policies per ECS service (CPU and requests per target), and the alarms Application Auto Scaling
#: creates for each (one to scale out, one to scale in).
SCALING_POLICIES_PER_SERVICE = 2
ALARMS_PER_POLICY = 2
#: Fargate's pod sizes (vCPU -> GB choices) and the memory Fargate adds to a pod's requests for its own agents.
FARGATE_POD_SIZES = {
    0.25: (0.5, 1, 2),
    0.5: (1, 2, 3, 4),
    1: tuple(range(2, 9)),
    2: tuple(range(4, 17)),
    4: tuple(range(8, 31)),
}
FARGATE_POD_OVERHEAD_MB = 256


@dataclass(frozen=True)
class Line:
    """One line of a monthly estimate: what, how many units of which price, and what is assumed."""

    item: str
    quantity: float
    price: str
    note: str = ""

    @property
    def monthly(self) -> float:
        return self.quantity * PRICES[self.price].usd


def hourly(item: str, count: float, price: str, note: str = "") -> Line:
    """Something billed by the hour, running all month."""
    return Line(item, count * HOURS_PER_MONTH, price, note)


def fargate(item: str, count: int, vcpu: float, gb: float, note: str = "") -> list[Line]:
    """`count` Fargate tasks or pods of one size, all month."""
    size = f"{count} x ({vcpu:g} vCPU, {gb:g} GB)"
    return [
        hourly(f"{item}: {size}, vCPU", count * vcpu, "fargate_vcpu_hour", note),
        hourly(f"{item}: {size}, memory", count * gb, "fargate_gb_hour", note),
    ]


def fargate_pod_size(cpu_millis: int, memory_mib: int) -> tuple[float, float]:
    """The Fargate size EKS gives a pod: the smallest that holds its requests plus Fargate's 256 MB (AWS's "Fargate
    pod configuration" page)."""
    need_gb = (memory_mib + FARGATE_POD_OVERHEAD_MB) / 1024
    for vcpu, choices in FARGATE_POD_SIZES.items():
        if vcpu * 1000 >= cpu_millis and choices[-1] >= need_gb:
            return vcpu, next(gb for gb in choices if gb >= need_gb)
    raise ValueError(f"no Fargate size holds {cpu_millis}m CPU and {memory_mib} MiB")


def root_lines(settings: SharedSettings, az_count: int) -> list[Line]:
    """The shared root: NAT gateways with their addresses and traffic, image storage."""
    nats = {"none": 0, "single": 1, "perAz": az_count}[settings.nat_gateways]
    lines = [
        hourly("NAT gateway", nats, "nat_hour"),
        hourly("NAT gateway public IPv4", nats, "public_ipv4_hour"),
        Line("NAT data processed", ASSUMED_NAT_GB if nats else 0, "nat_gb", f"assumed {ASSUMED_NAT_GB:g} GB"),
    ]
    stored = settings.ecr_keep_last * 2 * ASSUMED_IMAGE_GB
    lines.append(Line("ECR images", stored, "ecr_gb_month", f"{settings.ecr_keep_last} kept per repository, assumed"))
    lines.append(Line("KMS key of the stacks' secrets", 1, "kms_key_month", "one per environment (bootstrap)"))
    return [line for line in lines if line.quantity]


def _alb(az_count: int) -> list[Line]:
    return [
        hourly("Application Load Balancer", 1, "alb_hour"),
        hourly("ALB capacity units", ASSUMED_LCU, "alb_lcu_hour", f"assumed {ASSUMED_LCU:g} LCU (low traffic)"),
        hourly("ALB public IPv4 (one per AZ)", az_count, "public_ipv4_hour"),
    ]


def _workloads(settings: PlatformSettings) -> list[tuple[str, ServiceSize]]:
    """The API, and the UI when enabled, with their sizes."""
    return [("API", settings.api)] + ([("UI", settings.ui)] if settings.ui.enabled else [])


def ecs_lines(settings: EcsStackSettings, az_count: int) -> list[Line]:
    """The ECS platform: ALB, tasks (and their public addresses without NAT), logs, metrics, WAF."""
    lines = _alb(az_count)
    tasks = 0
    for name, size in _workloads(settings):
        lines += fargate(f"{name} tasks", size.desired_count, size.cpu / 1024, size.memory / 1024)
        tasks += size.desired_count
    if settings.task_subnets == "public":
        lines.append(hourly("Task public IPv4 (one per task)", tasks, "public_ipv4_hour"))
    alarms = len(_workloads(settings)) * SCALING_POLICIES_PER_SERVICE * ALARMS_PER_POLICY
    lines.append(Line("Target-tracking alarms", alarms, "alarm_month", "2 policies x 2 alarms per service"))
    lines.append(Line("CloudWatch Logs", ASSUMED_LOG_GB, "logs_gb", f"assumed {ASSUMED_LOG_GB:g} GB"))
    if settings.container_insights:
        cluster, per_service = ASSUMED_INSIGHTS_METRICS
        metrics = cluster + per_service * len(_workloads(settings))
        lines.append(Line("Container Insights metrics", metrics, "metric_month", "estimated metric count"))
    lines += waf_lines(settings)
    return lines


def waf_lines(settings: EcsStackSettings) -> list[Line]:
    """The optional web ACL with its one rate-based rule."""
    if settings.waf is None:
        return []
    return [
        Line("WAF web ACL", 1, "waf_acl_month"),
        Line("WAF rate-based rule", 1, "waf_rule_month"),
        Line("WAF requests", ASSUMED_REQUESTS_MILLION, "waf_million_requests", "assumed 1 million"),
    ]


def eks_lines(settings: EksStackSettings, az_count: int) -> list[Line]:
    """The EKS platform: control plane, the app's and the system's Fargate pods, the controller's ALB, logs."""
    lines = [hourly("EKS control plane (standard support)", 1, "eks_standard_hour")]
    for name, size in _workloads(settings):
        vcpu, gb = fargate_pod_size(size.k8s_cpu_millis, size.memory)
        lines += fargate(
            f"{name} pods", size.desired_count, vcpu, gb, "requests + 256 MB, rounded up to a Fargate size"
        )
    lines += fargate("System pods", EKS_SYSTEM_PODS, *fargate_pod_size(100, 200), "CoreDNS 2, controller 2, metrics 1")
    lines += _alb(az_count)
    logs = ASSUMED_LOG_GB + ASSUMED_EKS_LOG_GB
    lines.append(Line("CloudWatch Logs (pods, control plane)", logs, "logs_gb", f"assumed {logs:g} GB"))
    return lines


def total(lines: Sequence[Line]) -> float:
    return sum(line.monthly for line in lines)


def dollars(value: float) -> str:
    """A price as the docs print it."""
    return f"${value:,.2f}"


ROOT = Path(__file__).resolve().parents[1]
#: The stack files a profile deploys: the root's and each platform's, by project.
STACK_FILES: dict[str, tuple[type[StackSettings], str, str]] = {
    "root": (SharedSettings, "Pulumi.{stack}.yaml", "diabetes"),
    "ecs": (EcsStackSettings, "stacks/ecs/Pulumi.{stack}.yaml", "diabetes-ecs"),
    "eks": (EksStackSettings, "stacks/eks/Pulumi.{stack}.yaml", "diabetes-eks"),
}


@dataclass(frozen=True)
class Profile:
    """A way to run the project: which stack files, with which `pulumi config set` changes on top, per project."""

    key: str
    title: str
    stack: str
    projects: tuple[str, ...]
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def settings(self, project: str) -> Any:
        """The typed settings this profile deploys for one project (prices are us-east-1's)."""
        model, path, namespace = STACK_FILES[project]
        extra = {"imageTag": "0000000"} if project != "root" else {}
        return read_stack_file(
            model, ROOT / path.format(stack=self.stack), namespace, REGION, **extra, **self.overrides.get(project, {})
        )

    def lines(self) -> dict[str, list[Line]]:
        """The monthly lines of each project."""
        builders: dict[str, Callable[[Any, int], list[Line]]] = {
            "root": root_lines,
            "ecs": ecs_lines,
            "eks": eks_lines,
        }
        return {project: builders[project](self.settings(project), AZ_COUNT) for project in self.projects}

    @property
    def monthly(self) -> float:
        return sum(total(lines) for lines in self.lines().values())


#: The profiles every page prices, cheapest first. `trial` is the committed `Pulumi.trial.yaml` pair.
PROFILES = (
    Profile("trial", "First try: ECS, no NAT gateway, one API task", "trial", ("root", "ecs")),
    Profile(
        "trial-nat",
        "First try with a NAT gateway (tasks in private subnets)",
        "trial",
        ("root", "ecs"),
        {"root": {"natGateways": "single"}, "ecs": {"taskSubnets": "private"}},
    ),
    Profile("dev-ecs", "dev: root and ECS (API 2 tasks, UI 1)", "dev", ("root", "ecs")),
    Profile("dev-eks", "dev: root and EKS (API 2 pods, UI 1)", "dev", ("root", "eks")),
    Profile("dev-all", "dev: root, ECS and EKS", "dev", ("root", "ecs", "eks")),
)
#: The optional extras' cost on top of any profile.
OPTION_LINES = {"waf": lambda: waf_lines(PROFILES[0].settings("ecs").model_copy(update={"waf": WafSettings()}))}


def profile(key: str) -> Profile:
    (found,) = [p for p in PROFILES if p.key == key]
    return found
