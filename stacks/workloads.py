"""What runs, independent of where: the API and the optional UI, with their ports, probes and environment.

ECS task definitions and Kubernetes Deployments are both generated from these specs, and both load balancers
(the ECS ALB and the EKS Ingress) share the settings below, so the two platforms cannot drift apart on a port, a
health path, an environment variable, a TLS policy or a timeout.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import overload

import pulumi

from stacks.config import ConfigError, PlatformSettings, ServiceSize
from stacks.service_limits import service_limits

#: The image's non-root user (uid and gid) baked into both targets.
RUN_AS_USER = 10001
#: The only writable path in the container (an emptyDir / ephemeral volume); the root filesystem is read-only.
TMP_PATH = "/tmp"  # noqa: S108 - a dedicated, per-task volume, not the host's /tmp

#: The API routes the load balancer sends to the API, whether the UI owns `/` or not (ALB patterns: `*` is any
#: characters, `/` included; matching is case-sensitive and sees the path only, not the query). Nothing else of the
#: API is public: `/metrics` and `/operator/*` are for scrapers and operators inside the VPC (without the UI, the
#: API used to own the listener's default action, so every path, `/metrics` included, reached it).
API_PUBLIC_PATHS = ("/predict", "/predict/*", "/health", "/ready", "/model")
#: The interactive docs, their assets and the schema, public only when `publicApiDocs` is true.
API_DOCS_PATHS = ("/docs", "/docs/*", "/openapi.json")
#: The UI's paths the load balancer refuses although the UI owns `/`: Streamlit's own metrics (session and cache
#: stats). Refused only as spelled: the UI owns every other path, and Streamlit decodes the path, so a percent-encoded
#: spelling (`/_stcore/%6detrics`) still reaches it if the ALB matches the raw path (ALB patterns cannot hold `%`).
UI_PRIVATE_PATHS = ("/_stcore/metrics",)
#: What the load balancer answers itself for any path it does not route (both platforms): a 404 in the service's
#: own error shape (`{"error", "reason", "errors", "request_id"}`; no request id: no task saw the request).
NOT_FOUND_STATUS = 404
NOT_FOUND_CONTENT_TYPE = "application/json"
NOT_FOUND_REASON = "Not Found: the load balancer routes only the API's public paths"
NOT_FOUND_BODY = json.dumps(
    {
        "error": "not_found",
        "reason": NOT_FOUND_REASON,
        "errors": [{"field": "path", "reason": NOT_FOUND_REASON, "index": None}],
        "request_id": None,
    },
    separators=(",", ":"),
)

#: Load balancer TLS policy: TLS 1.3 with a TLS 1.2 fallback, forward secrecy only.
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
#: Load balancer idle timeouts, set explicitly: the first line against slow clients holding connections open.
#: Streamlit keeps one websocket per browser session open, so the UI's must outlast a user's pause; the API's
#: answers take milliseconds, so it keeps the AWS default, stated here so it is a decision, not an accident.
UI_IDLE_TIMEOUT = 3600
API_IDLE_TIMEOUT = 60
#: How much longer the API keeps an idle connection than the load balancer in front of it, so the load balancer,
#: never the task, closes it (the other way round it may reuse a connection the task just closed: a 502).
KEEP_ALIVE_MARGIN = 15
#: How long the load balancer's cookie keeps a browser on one UI task (sticky workloads only).
STICKY_SESSION_SECONDS = 86400
#: The API's stop timeout (`SERVICE_STOP_TIMEOUT_SECONDS`): from SIGTERM to exit, its drain and shutdown timeout and
#: a second fit in it (the service refuses to start otherwise). ECS's `stopTimeout` is set to it.
STOP_SECONDS = 30
#: EKS only: how long a terminating pod keeps serving before it gets SIGTERM (a preStop sleep). Kubernetes sends
#: SIGTERM as it removes the pod's endpoint; the load balancer controller then deregisters the IP and the ALB keeps
#: routing new requests to it for some seconds more, which would find the listener closed (a 502). AWS and the
#: controller's docs advise a preStop sleep; ECS needs none (it deregisters and waits the target group's
#: deregistration delay before SIGTERM). Kubernetes counts it in `terminationGracePeriodSeconds`.
PRE_STOP_SECONDS = 15


@dataclass(frozen=True)
class Workload:
    """One container workload: identity, port, probes, size, environment."""

    name: str
    port: int
    liveness_path: str
    readiness_path: str
    size: ServiceSize
    #: Plain strings, or Pulumi inputs for values only the deployment knows (the load balancer's subnets).
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    sticky: bool = False


def api_public_paths(settings: PlatformSettings) -> tuple[str, ...]:
    """The API routes the load balancer exposes (the docs only when the stack publishes them)."""
    return API_PUBLIC_PATHS + (API_DOCS_PATHS if settings.public_api_docs else ())


def load_balancer_idle_timeout(settings: PlatformSettings) -> int:
    """The one load balancer's idle timeout: the UI's websocket sets it when the UI shares it, else the API's."""
    return UI_IDLE_TIMEOUT if settings.ui.enabled else API_IDLE_TIMEOUT


def _proxy_list(cidrs: Sequence[str]) -> str:
    """The load balancer's subnets as `SERVICE_FORWARDED_ALLOW_IPS` (JSON), each checked to be a network."""
    if not cidrs:
        raise ConfigError(
            "the load balancer's subnets are empty: the API would trust no proxy and log every request from the "
            "load balancer's address. Export the root's public subnet CIDRs (`pulumi up` the root stack)."
        )
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr)
        except ValueError as error:
            raise ConfigError(
                f"the load balancer's subnet {cidr!r} is not a network (CIDR, host bits zero): {error}. Check the "
                "root stack's publicSubnetCidrs output."
            ) from error
    return json.dumps(list(cidrs))


@overload
def forwarded_allow_ips(load_balancer_subnets: Sequence[str]) -> str: ...
@overload
def forwarded_allow_ips(load_balancer_subnets: pulumi.Output[list[str]]) -> pulumi.Output[str]: ...
def forwarded_allow_ips(load_balancer_subnets: Sequence[str] | pulumi.Output[list[str]]) -> pulumi.Input[str]:
    """The proxies whose `X-Forwarded-For` names the client: the load balancer's subnets and nothing wider (review
    10, R10-5: the whole 10.0.0.0/8 was trusted, so any peer in the VPC that reached a task could name any address,
    and the batch line orders clients by address). Plain CIDRs (render-k8s, tests) give a string, the root's output
    an Output."""
    if isinstance(load_balancer_subnets, pulumi.Output):
        return load_balancer_subnets.apply(_proxy_list)
    return _proxy_list(load_balancer_subnets)


@overload
def api_environment(settings: PlatformSettings, load_balancer_subnets: Sequence[str]) -> dict[str, str]: ...
@overload
def api_environment(
    settings: PlatformSettings, load_balancer_subnets: pulumi.Output[list[str]]
) -> dict[str, pulumi.Input[str]]: ...
def api_environment(
    settings: PlatformSettings, load_balancer_subnets: Sequence[str] | pulumi.Output[list[str]]
) -> dict[str, pulumi.Input[str]] | dict[str, str]:
    """The API's settings (service/settings.py): the model, its pinned digest, log level, whether /docs exists,
    which proxies name the client (the load balancer's subnets: the root's public subnets).

    The keep-alive follows the load balancer's idle timeout (the image's default only covers the API's own 60 s);
    the limits that bound memory follow the task's memory (`stacks.service_limits`).
    """
    env: dict[str, pulumi.Input[str]] = {
        **service_limits(settings.api.memory).environment(),
        "MODEL_URI": settings.model_uri,
        "SERVICE_KEEP_ALIVE_SECONDS": str(load_balancer_idle_timeout(settings) + KEEP_ALIVE_MARGIN),
        "SERVICE_LOG_LEVEL": settings.log_level,
        "SERVICE_STOP_TIMEOUT_SECONDS": str(STOP_SECONDS),
        "SERVICE_DOCS_ENABLED": "true" if settings.public_api_docs else "false",
        "SERVICE_FORWARDED_ALLOW_IPS": forwarded_allow_ips(load_balancer_subnets),
    }
    if settings.model_sha256:
        env["MODEL_SHA256"] = settings.model_sha256
    return env


def api_workload(
    settings: PlatformSettings, load_balancer_subnets: Sequence[str] | pulumi.Output[list[str]]
) -> Workload:
    """The prediction API: liveness on /health, readiness on /ready (200 only once the model is loaded)."""
    return Workload(
        name="api",
        port=8000,
        liveness_path="/health",
        readiness_path="/ready",
        size=settings.api,
        env=api_environment(settings, load_balancer_subnets),
    )


def ui_workload(settings: PlatformSettings, api_url: str) -> Workload:
    """The Streamlit UI: one health path, sticky sessions for its websocket, API_URL pointing at the API."""
    return Workload(
        name="ui",
        port=8501,
        liveness_path="/_stcore/health",
        readiness_path="/_stcore/health",
        size=settings.ui,
        env={"API_URL": api_url},
        sticky=True,
    )


def stack_workloads(
    settings: PlatformSettings,
    api_url: Callable[[Workload], str],
    load_balancer_subnets: Sequence[str] | pulumi.Output[list[str]],
) -> list[Workload]:
    """The API, plus the UI when enabled; `api_url` says how the UI reaches the API on that platform, and
    `load_balancer_subnets` (CIDRs) which proxies the API trusts to name the client."""
    api = api_workload(settings, load_balancer_subnets)
    return [api, ui_workload(settings, api_url(api))] if settings.ui.enabled else [api]


def by_name(workloads: Sequence[Workload]) -> dict[str, Workload]:
    """The workloads keyed by name (`api`, and `ui` when enabled), so no caller relies on their order."""
    return {workload.name: workload for workload in workloads}


def health_command(port: int, path: str) -> list[str]:
    """A container health check that needs only Python (the slim image has no curl)."""
    return [
        "CMD",
        "python",
        "-c",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=4)",
    ]
