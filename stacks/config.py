"""Typed, validated settings of the three Pulumi projects, read once from the stack's config.

Every knob lives here, so a typo or an impossible value (a Fargate size that does not exist, an S3 model without
its digest, a log retention CloudWatch refuses) fails at the start of `pulumi preview` with the key name and how to
fix it, instead of half-way through a deployment. Each project reads the keys of its own namespace (the project
name: `diabetes:` for the shared root, `diabetes-ecs:` and `diabetes-eks:` for the platforms).
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

#: Valid Fargate task sizes: CPU units -> allowed memory (MiB).
FARGATE_SIZES: Mapping[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
}

#: Retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)
#: Longest `<project>-<environment>`: autonamed load balancers and target groups (name + 8 characters) must fit
#: in the 32 characters ELB allows.
MAX_NAME_LENGTH = 20

#: What the ECS request-count policy (`requestsPerTarget`) is derived from when the stack does not set it. The ALB's
#: `ALBRequestCountPerTarget` is the Sum of requests a target received over the policy's one-minute period, so its
#: target is requests per task per MINUTE. The old fixed 500 a minute (8 a second) scaled the API out at about a
#: fiftieth of what one default task serves.
#:
#: Single predictions (`/predict`) one full core serves a second: the low end of the 1,600-2,000 measured by
#: tests/benchmarks/serve.py on a 2-core machine (8 clients; docs/operations.md#capacity; ~1,850 in a later run).
PREDICTIONS_PER_CORE_SECOND = 1_600
#: Fargate's CPU units in one vCPU (`api.cpu` 256 is a quarter of one).
CPU_UNITS_PER_VCPU = 1024
#: One uvicorn worker per task: past one vCPU a task serves no more (docs/operations.md#capacity).
MAX_USEFUL_VCPUS = 1.0
#: The share of a task's capacity the policy aims at, the headroom being the rest: a Fargate vCPU is at best the
#: benchmark's core; the alarm needs three one-minute datapoints and a new task up to two minutes more to load its
#: model, while traffic may double; and a request is counted the same whether it is one prediction or a batch or an
#: explained one (those the CPU policy, `cpuTargetPercent`, catches: ECS scales out when either policy asks).
REQUEST_TARGET_SHARE = 0.5
SECONDS_PER_MINUTE = 60
#: The UI's requests are page loads, assets and websocket upgrades, not predictions: its value is not derived (its CPU
#: policy does the scaling).
UI_REQUESTS_PER_TARGET = 500


def requests_per_target_for(cpu: int) -> int:
    """The request-count target (requests per task per minute) of a task with `cpu` units: `REQUEST_TARGET_SHARE` of
    the single predictions it serves in a minute (256 units: 1,600 x 0.25 x 0.5 x 60 = 12,000)."""
    vcpus = min(cpu / CPU_UNITS_PER_VCPU, MAX_USEFUL_VCPUS)
    return round(PREDICTIONS_PER_CORE_SECOND * vcpus * REQUEST_TARGET_SHARE * SECONDS_PER_MINUTE)


_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: An environment's name: no hyphen, so no environment's `<project>-<env>-` names (load balancers, log groups, WAF,
#: task families) start with another's (`dev` and `dev-2` would share every grant made on `diabetes-dev-*`).
ENVIRONMENT_PATTERN = r"^[a-z0-9]{1,16}$"
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>[^\s]+?)/?$")
#: An IAM role or user: a full ARN, or `role/<name>` / `user/<name>` in the stack's own account.
_PRINCIPAL = re.compile(r"^(arn:aws[a-z-]*:iam::\d{12}:)?(role|user)/[\w+=,.@/-]+$")
_CIDR = re.compile(r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")


class ConfigError(ValueError):
    """The stack configuration is invalid; the message lists every bad key and how to set it."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ServiceSize(_Model):
    """Size and scaling of one Fargate workload (ECS task or EKS pod)."""

    cpu: int = 256
    memory: int = 512
    desired_count: int = Field(default=2, ge=0, le=100)
    min_count: int = Field(default=1, ge=0, le=100)
    max_count: int = Field(default=4, ge=1, le=100)
    cpu_target_percent: int = Field(default=60, ge=10, le=95)
    #: Requests per task per minute the ECS request policy aims at; unset: from `cpu` (`requests_per_target_for`).
    requests_per_target: int | None = Field(default=None, ge=10, le=100_000)

    @model_validator(mode="after")
    def _check(self) -> ServiceSize:
        if self.cpu not in FARGATE_SIZES:
            raise ValueError(f"cpu {self.cpu} is not a Fargate size; use one of {sorted(FARGATE_SIZES)}")
        if self.memory not in FARGATE_SIZES[self.cpu]:
            raise ValueError(
                f"memory {self.memory} MiB is not valid with cpu {self.cpu}; use one of {FARGATE_SIZES[self.cpu]}"
            )
        if not self.min_count <= self.desired_count <= self.max_count:
            raise ValueError(
                f"need minCount <= desiredCount <= maxCount, got {self.min_count} <= "
                f"{self.desired_count} <= {self.max_count}"
            )
        return self

    @property
    def request_count_target(self) -> int:
        """The ECS request policy's target: `requestsPerTarget` when set, else what follows from the task's CPU."""
        return self.requests_per_target or requests_per_target_for(self.cpu)

    @property
    def k8s_cpu_millis(self) -> int:
        """The CPU units as millicores: 1024 units are one vCPU, 1000m (`512m` would exceed 0.5 vCPU, and Fargate would
        bill the pod a whole one)."""
        return self.cpu * 1000 // 1024

    @property
    def k8s_cpu(self) -> str:
        """CPU request/limit as a Kubernetes quantity (Fargate sizes the pod from it)."""
        return f"{self.k8s_cpu_millis}m"

    @property
    def k8s_memory(self) -> str:
        """Memory request/limit as a Kubernetes quantity (Fargate adds its own 256 MiB on top)."""
        return f"{self.memory}Mi"


class UiSettings(ServiceSize):
    """The optional Streamlit UI; off unless `enabled: true`."""

    enabled: bool = False
    desired_count: int = Field(default=1, ge=0, le=100)
    min_count: int = Field(default=1, ge=0, le=100)
    max_count: int = Field(default=2, ge=1, le=100)
    requests_per_target: int | None = Field(default=UI_REQUESTS_PER_TARGET, ge=10, le=100_000)


def principal_name(value: str) -> str:
    """`role/<name>` or `user/<name>` of a config principal, with or without its account's ARN prefix."""
    return value.split(":", 5)[-1] if value.startswith("arn:") else value


class ClusterAccess(_Model):
    """Who may use the EKS cluster's Kubernetes API: the creator, and EKS access entries for everyone else.

    pulumi-eks always turns on `bootstrapClusterCreatorAdminPermissions`: EKS makes the identity that creates the
    cluster an admin itself, with an access entry of its own. So the creator gets no entry from this config (a second
    one for it would fail with ResourceInUseException), and it must be the same identity at every update.
    """

    #: The identity that creates the cluster (the first `pulumi up -C stacks/eks`); default: the CI deploy role
    #: `role/<project>-<env>-github-deploy` that `stacks.ops bootstrap` makes.
    creator: str | None = None
    #: More cluster admins: operators who run `pulumi up -C stacks/eks` or `kubectl` with full rights.
    admins: tuple[str, ...] = ()
    #: Read-only: the CI preview role, people who only look.
    viewers: tuple[str, ...] = ()

    @field_validator("creator")
    @classmethod
    def _creator(cls, value: str | None) -> str | None:
        if value is not None and not _PRINCIPAL.match(value):
            raise ValueError(
                f"not an IAM role or user: {value!r} (use role/<name> or arn:aws:iam::<account>:role/<name>)"
            )
        return value

    @field_validator("admins", "viewers")
    @classmethod
    def _arns(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [value for value in values if not _PRINCIPAL.match(value)]
        if bad:
            raise ValueError(f"not IAM roles or users: {bad} (use role/<name> or arn:aws:iam::<account>:role/<name>)")
        if len(set(values)) != len(values):
            raise ValueError(f"an ARN is listed twice: {sorted(values)}")
        return values

    @model_validator(mode="after")
    def _disjoint(self) -> ClusterAccess:
        both = sorted(set(self.admins) & set(self.viewers))
        if both:
            raise ValueError(f"{both} are both admins and viewers; an identity has one access entry")
        return self


class EksSettings(_Model):
    """EKS-only knobs."""

    #: A version in stacks/eks/versions.py (the preview warns 90 days before its standard support ends).
    version: str = "1.35"
    namespace: str = Field(default="diabetes", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    metrics_server_chart_version: str = Field(default="3.13.0", pattern=r"^\d+\.\d+\.\d+$")
    #: Who may reach the public API endpoint; empty (the default) makes the endpoint private to the VPC.
    public_access_cidrs: tuple[str, ...] = ()
    #: Accept a version past its standard support, which bills extended support (six times the hourly price).
    allow_extended_support: bool = False
    access: ClusterAccess

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        from stacks.eks.versions import STANDARD_SUPPORT_END

        if value not in STANDARD_SUPPORT_END:
            raise ValueError(
                f"EKS version {value!r} has no support dates in stacks/eks/versions.py; use one of "
                f"{sorted(STANDARD_SUPPORT_END)} or add its row from AWS's EKS release calendar"
            )
        return value

    @model_validator(mode="after")
    def _in_standard_support(self) -> EksSettings:
        from stacks.eks import versions

        if versions.past_standard_support(self.version, versions.today()) and not self.allow_extended_support:
            raise ValueError(
                f"EKS {self.version} is past its standard support "
                f"({versions.STANDARD_SUPPORT_END[self.version].isoformat()}) and bills extended support: "
                f"{versions.next_version(self.version)} (one minor version at a time), or set "
                "eks.allowExtendedSupport: true to keep it knowingly"
            )
        return self

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        bad = [value for value in values if not _CIDR.match(value)]
        if bad:
            raise ValueError(f"publicAccessCidrs must be IPv4 CIDRs, got {bad}")
        return values


class S3Location(BaseModel):
    """A model stored in S3: the task role may read exactly this prefix."""

    model_config = ConfigDict(frozen=True)
    bucket: str
    prefix: str


class StackSettings(_Model):
    """What every project shares: naming, region, tags, log retention."""

    project: str = Field(default="diabetes", pattern=r"^[a-z][a-z0-9-]{1,19}$")
    environment: str = Field(pattern=ENVIRONMENT_PATTERN)
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    log_retention_days: int = 30
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"logRetentionDays {value} is not accepted by CloudWatch; use one of {LOG_RETENTION_DAYS}")
        return value

    @model_validator(mode="after")
    def _name_fits(self) -> StackSettings:
        if len(self.name) > MAX_NAME_LENGTH:
            raise ValueError(
                f"'{self.name}' (project-environment) is longer than {MAX_NAME_LENGTH} characters; shorten the "
                "project or the stack name (load balancer names are limited to 32)"
            )
        return self

    @property
    def name(self) -> str:
        """Prefix of every physical name: `<project>-<environment>`."""
        return f"{self.project}-{self.environment}"

    def tags_for(self, component: str) -> dict[str, str]:
        """Tags for every resource: who owns it, which stack, which component, and the user's own tags."""
        return {
            **self.tags,
            "Project": self.project,
            "Environment": self.environment,
            "Component": component,
            "ManagedBy": "pulumi",
        }


class SharedSettings(StackSettings):
    """The root project: ECR repositories, VPC, the model and access-log buckets."""

    ecr_keep_last: int = Field(default=30, ge=1, le=1000)
    vpc_cidr: str = Field(default="10.40.0.0/16", pattern=r"^10\.\d{1,3}\.0\.0/16$")
    #: `none` leaves the private subnets without internet access: only ECS tasks in the public subnets
    #: (`diabetes-ecs:taskSubnets: public`) can run then; the EKS stack refuses it (Fargate pods need a NAT).
    nat_gateways: Literal["single", "perAz", "none"] = "single"


class PlatformSettings(StackSettings):
    """What both platforms (ECS, EKS) run: the images, their size, the model, the public entry point."""

    image_tag: str
    #: The root stack to read (`<org>/<project>/<stack>`); default: the same organization and stack name.
    shared_stack: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+/[\w.-]+$")
    api: ServiceSize = ServiceSize()
    ui: UiSettings = UiSettings()
    certificate_arn: str | None = None
    model_uri: str = "/app/artifacts/model"
    #: Digest of the model directory (see `stacks.ops model-digest`); required for an S3 model.
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    #: Serve /docs and /openapi.json to the internet; off by default (the schema is in the docs site).
    public_api_docs: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("image_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not _IMAGE_TAG.match(value) or value == "latest":
            raise ValueError(
                "imageTag must be an immutable ECR tag such as a git sha (letters, digits, '.', '_', '-'; not 'latest')"
            )
        return value

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, value: str | None) -> str | None:
        if value and not _ACM_ARN.match(value):
            raise ValueError(
                "certificateArn must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)"
            )
        return value or None

    @field_validator("model_uri")
    @classmethod
    def _model_uri(cls, value: str) -> str:
        if value.startswith("s3://"):
            if not _S3_URI.match(value):
                raise ValueError("modelUri must look like s3://<bucket>/<prefix> (a prefix is required)")
        elif not value.startswith("/"):
            raise ValueError("modelUri must be s3://<bucket>/<prefix> or an absolute path inside the image")
        return value

    @model_validator(mode="after")
    def _pinned_s3_model(self) -> PlatformSettings:
        if self.model_s3 is not None and self.model_sha256 is None:
            raise ValueError(
                "modelSha256 is required when modelUri is s3://...: set it to the digest "
                "`python -m stacks.ops model-digest <model dir>` prints"
            )
        if self.model_s3 is not None and not self.model_s3.bucket.startswith(f"{self.name}-models-"):
            raise ValueError(
                f"modelUri must be in this stack's model bucket ({self.name}-models-..., `pulumi stack output "
                f"modelBucket`), not {self.model_s3.bucket}: the stack's roles may read no other bucket (their "
                "permissions boundary)"
            )
        return self

    @model_validator(mode="after")
    def _certificate_in_region(self) -> PlatformSettings:
        region = self.certificate_arn.split(":")[3] if self.certificate_arn else self.region
        if region != self.region:
            raise ValueError(
                f"certificateArn is in {region}, the stack in {self.region}: a load balancer takes an ACM certificate "
                "of its own region only (request one there: docs/deploy.md, HTTPS)"
            )
        return self

    @property
    def model_s3(self) -> S3Location | None:
        """Bucket and prefix of an S3 model URI, or None for a model baked into the image."""
        match = _S3_URI.match(self.model_uri)
        return S3Location(bucket=match["bucket"], prefix=match["prefix"]) if match else None


class WafSettings(_Model):
    """An AWS WAF web ACL on the load balancer with one rate-based rule: a client address sending more than
    `rateLimit` requests in `windowSeconds` is blocked until its rate falls below it."""

    rate_limit: int = Field(default=1000, ge=10, le=2_000_000_000)
    window_seconds: Literal[60, 120, 300, 600] = 300


class EcsStackSettings(PlatformSettings):
    """The `stacks/ecs` project."""

    #: `private` (the default): tasks without public addresses, out through the root's NAT gateway. `public`: tasks
    #: in the public subnets with a public address each and no NAT needed, still reachable only from the load
    #: balancer's security group (the cheap first try; see docs/deploy.md for the trade-off).
    task_subnets: Literal["private", "public"] = "private"
    #: CloudWatch Container Insights on the cluster (billed per metric).
    container_insights: bool = True
    #: An optional WAF rate-based rule on the load balancer.
    waf: WafSettings | None = None


class EksStackSettings(PlatformSettings):
    """The `stacks/eks` project."""

    eks: EksSettings

    @property
    def eks_cluster_name(self) -> str:
        """Physical name of the EKS cluster."""
        return f"{self.name}-eks"

    @property
    def eks_creator(self) -> str:
        """The identity that creates the cluster and is its admin without an access entry."""
        return self.eks.access.creator or f"role/{self.name}-github-deploy"

    @model_validator(mode="after")
    def _creator_has_no_entry(self) -> EksStackSettings:
        access = self.eks.access
        creator = principal_name(self.eks_creator)
        listed = [value for value in (*access.admins, *access.viewers) if principal_name(value) == creator]
        if listed:
            raise ValueError(
                f"eks.access lists {listed[0]}, the cluster's creator: EKS makes the creator an admin itself "
                "(pulumi-eks sets bootstrapClusterCreatorAdminPermissions), and a second access entry for it fails. "
                "Remove it from eks.access.admins/viewers, or set eks.access.creator to the identity that creates "
                "the cluster."
            )
        return self


Settings = TypeVar("Settings", bound=StackSettings)


def parse_settings(model: type[Settings], values: Mapping[str, Any], namespace: str) -> Settings:
    """Validate raw config values (camelCase keys) into settings, or raise ConfigError naming each bad key."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(stack)"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"  {namespace}:{key}: {message}")
        raise ConfigError(
            "Invalid stack configuration:\n"
            + "\n".join(lines)
            + f"\nFix it in Pulumi.<stack>.yaml or with `pulumi config set --path {namespace}:<key> <value>`."
        ) from None


def read_stack_file(
    model: type[Settings], stack_file: Path, project: str, region: str | None = None, **overrides: Any
) -> Settings:
    """The settings a committed `Pulumi.<stack>.yaml` gives a project (environment: the stack's name; region: the
    file's `aws:region`, else `region`, else AWS_REGION), with `overrides` (camelCase keys) on top."""
    import yaml

    config = yaml.safe_load(stack_file.read_text())["config"]
    values: dict[str, Any] = {
        key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{project}:")
    }
    values |= {
        "environment": stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml"),
        "region": config.get("aws:region") or region or os.environ.get("AWS_REGION"),
        **overrides,
    }
    return parse_settings(model, values, project)


def _is_object(annotation: Any) -> bool:
    """Whether a field is read as structured config (a model, mapping or list) rather than a string."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return any(_is_object(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    if origin in (dict, tuple, list):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def config_keys(model: type[StackSettings]) -> dict[str, bool]:
    """The config keys a project reads (camelCase) and whether each is structured; environment and region come
    from the stack name and `aws:region`."""
    hints = typing.get_type_hints(model)
    return {
        to_camel(name): _is_object(hints[name]) for name in model.model_fields if name not in ("environment", "region")
    }


def load_settings(model: type[Settings]) -> Settings:
    """Read the current stack's config once (namespace = project name; region from `aws:region`)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    namespace = pulumi.get_project()
    keys = config_keys(model)
    known = {f"{namespace}:{key}" for key in keys}
    present = {*CONFIG.get(), *get_config_env()}  # set by the engine, or by PULUMI_CONFIG in older hosts
    unknown = sorted(key for key in present if key.startswith(f"{namespace}:") and key not in known)
    if unknown:
        raise ConfigError(
            f"Unknown config key(s) {', '.join(unknown)}: the program reads only {', '.join(sorted(known))}. "
            "Check the spelling in Pulumi.<stack>.yaml."
        )
    config = pulumi.Config(namespace)
    region = pulumi.Config("aws").get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    values: dict[str, Any] = {"environment": pulumi.get_stack(), "region": region}
    for key, structured in keys.items():
        raw = config.get_object(key) if structured else config.get(key)
        if raw is not None:
            values[key] = raw
    if values["region"] is None:
        raise ConfigError(
            "aws:region is not set: run `pulumi config set aws:region <region>` for this stack (or set AWS_REGION)."
        )
    return parse_settings(model, values, namespace)
