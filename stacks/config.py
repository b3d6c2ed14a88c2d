"""Typed, validated stack settings, read once from the Pulumi config.

Every knob the program has lives here, so a typo or an impossible value (a Fargate size that does not exist, a
log retention CloudWatch refuses) fails at the start of `pulumi preview` with the key name and how to fix it,
instead of half-way through a deployment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

#: Namespace of every project key in Pulumi.<stack>.yaml (the prefix before the colon of `imageTag`, `api`, ...).
NAMESPACE = "diabetes"

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

_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>[^\s]+?)/?$")


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
    requests_per_target: int = Field(default=500, ge=10, le=100_000)

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
    def k8s_cpu(self) -> str:
        """CPU request/limit as a Kubernetes quantity (Fargate sizes the pod from it)."""
        return f"{self.cpu}m"

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


class EksSettings(_Model):
    """EKS-only knobs."""

    version: str = Field(default="1.33", pattern=r"^1\.\d{2}$")
    namespace: str = Field(default="diabetes", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    lb_controller_chart_version: str = Field(default="1.13.4", pattern=r"^\d+\.\d+\.\d+$")
    metrics_server_chart_version: str = Field(default="3.13.0", pattern=r"^\d+\.\d+\.\d+$")
    public_access_cidrs: tuple[str, ...] = ("0.0.0.0/0",)


class S3Location(BaseModel):
    """A model stored in S3: the task role may read exactly this prefix."""

    model_config = ConfigDict(frozen=True)
    bucket: str
    prefix: str


class StackSettings(_Model):
    """The whole stack configuration (keys under `diabetes:` in Pulumi.<stack>.yaml)."""

    project: str = Field(default="diabetes", pattern=r"^[a-z][a-z0-9-]{1,20}$")
    environment: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,15}$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    image_tag: str
    # Both off is the bootstrap state: only the registry and the network, so the first images can be pushed.
    ecs_enabled: bool = True
    eks_enabled: bool = False
    api: ServiceSize = ServiceSize()
    ui: UiSettings = UiSettings()
    eks: EksSettings = EksSettings()
    certificate_arn: str | None = None
    model_uri: str = "/app/artifacts/model"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    ecr_keep_last: int = Field(default=30, ge=1, le=1000)
    log_retention_days: int = 30
    vpc_cidr: str = Field(default="10.40.0.0/16", pattern=r"^10\.\d{1,3}\.0\.0/16$")
    nat_gateways: Literal["single", "perAz"] = "single"
    tags: dict[str, str] = Field(default_factory=dict)

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

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"logRetentionDays {value} is not accepted by CloudWatch; use one of {LOG_RETENTION_DAYS}")
        return value

    @property
    def name(self) -> str:
        """Prefix of every physical name: `<project>-<environment>`."""
        return f"{self.project}-{self.environment}"

    @property
    def eks_cluster_name(self) -> str:
        """Physical name of the EKS cluster (also used in the subnets' kubernetes.io/cluster tag)."""
        return f"{self.name}-eks"

    @property
    def model_s3(self) -> S3Location | None:
        """Bucket and prefix of an S3 model URI, or None for a model baked into the image."""
        match = _S3_URI.match(self.model_uri)
        return S3Location(bucket=match["bucket"], prefix=match["prefix"]) if match else None

    def tags_for(self, component: str) -> dict[str, str]:
        """Tags for every resource: who owns it, which stack, which component, and the user's own tags."""
        return {
            **self.tags,
            "Project": self.project,
            "Environment": self.environment,
            "Component": component,
            "ManagedBy": "pulumi",
        }


def parse_settings(values: Mapping[str, Any]) -> StackSettings:
    """Validate raw config values (camelCase keys) into settings, or raise ConfigError naming each bad key."""
    try:
        return StackSettings.model_validate(dict(values))
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"]) or "(stack)"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"  {NAMESPACE}:{key}: {message}")
        raise ConfigError(
            "Invalid stack configuration:\n"
            + "\n".join(lines)
            + f"\nFix it in Pulumi.<stack>.yaml or with `pulumi config set --path {NAMESPACE}:<key> <value>`."
        ) from None


#: Keys read from the `diabetes:` namespace; objects (api, ui, eks, tags) are read as structured config.
_SCALAR_KEYS = (
    "project",
    "imageTag",
    "ecsEnabled",
    "eksEnabled",
    "certificateArn",
    "modelUri",
    "logLevel",
    "ecrKeepLast",
    "logRetentionDays",
    "vpcCidr",
    "natGateways",
)
_OBJECT_KEYS = ("api", "ui", "eks", "tags")


def load_settings() -> StackSettings:
    """Read the current stack's config once (the region comes from the AWS provider's `aws:region`)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    known = {f"{NAMESPACE}:{key}" for key in (*_SCALAR_KEYS, *_OBJECT_KEYS)}
    present = {*CONFIG.get(), *get_config_env()}  # set by the engine, or by PULUMI_CONFIG in older hosts
    unknown = sorted(key for key in present if key.startswith(f"{NAMESPACE}:") and key not in known)
    if unknown:
        raise ConfigError(
            f"Unknown config key(s) {', '.join(unknown)}: the program reads only {', '.join(sorted(known))}. "
            "Check the spelling in Pulumi.<stack>.yaml."
        )
    config = pulumi.Config(NAMESPACE)
    values: dict[str, Any] = {"environment": pulumi.get_stack(), "region": pulumi.Config("aws").get("region")}
    for key in _SCALAR_KEYS:
        raw = config.get(key)
        if raw is not None:
            values[key] = raw
    for key in _OBJECT_KEYS:
        obj = config.get_object(key)
        if obj is not None:
            values[key] = obj
    if values["region"] is None:
        raise ConfigError("aws:region is not set: run `pulumi config set aws:region <region>` for this stack.")
    return parse_settings(values)
