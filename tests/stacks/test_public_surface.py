"""What each load balancer sends where: the API's public paths reach the API, nothing else of it does.

Without the UI, the ECS listener's default action and the EKS Ingress's `/` Prefix used to forward every path to
the API, `/metrics` and `/operator/*` included. The listeners and the Ingress are read from the programs' resource
graphs (Pulumi mocks) and evaluated the way an ALB evaluates a listener: rules by priority, then the default action;
a path pattern is case-sensitive, `*` matches any characters (`/` included), `?` exactly one, and it sees the path
only, never the query string (AWS, "Listener rules for your Application Load Balancer", path conditions). The
Ingress is first translated as the AWS Load Balancer Controller does (model_build_listener_rules.go: Exact paths
first, Prefix paths longest first; Prefix `/x` is `/x` and `/x/*`, `/` is `/*`; no rule matched: the default
backend, else its own 404).

What this does not cover: how an ALB decodes or normalises a path before matching (`/%6detrics`, `/./metrics`,
absolute-form targets): whatever it does, only the public patterns forward to the API, so a probe that is not one of
them cannot reach `/metrics` however it is decoded. What the allowed patterns let through (`/predict/*`, `/docs/*`)
is checked against the real service below. The UI's `/_stcore/metrics` is the one path refused where a workload
owns `/`: only as spelled (Streamlit decodes `/_stcore/%6detrics` and serves it; an ALB pattern cannot hold `%`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from ml.contract import ErrorResponse
from stacks.workloads import API_DOCS_PATHS, API_PUBLIC_PATHS, NOT_FOUND_BODY, UI_PRIVATE_PATHS
from tests.service.helpers import connect, read_answer, serving
from tests.stacks.conftest import CERTIFICATE
from tests.stacks.harness import Resource, Run, integral, run_ecs, run_eks

#: What a request gets: forwarded to `api` or `ui`, the load balancer's `404`, or a `redirect` (to HTTPS).
Outcome = str
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: The API's private routes, and the spellings a client may try for them: case, slashes, query strings, encodings,
#: dot segments. The service itself answers `/metrics?x=1`, `/%6detrics` (uvicorn decodes the path) and
#: `GET http://host/metrics` with the metrics, and `/metrics/` with a redirect to them: the load balancer must answer
#: these itself (or hand them to the UI).
BLOCKED_PROBES = (
    "/metrics",
    "/metrics/",
    "//metrics",
    "/METRICS",
    "/Metrics",
    "/metrics?format=prometheus",
    "/metrics?",
    "/metrics;x",
    "/metrics%2F",
    "/%6detrics",
    "/%2Fmetrics",
    "/./metrics",
    "/health/../metrics",
    "/ready/../metrics",
    "/operator/model",
)
#: Private spellings under a public pattern (`/predict/*`, `/docs/*`): the load balancer forwards them to the API,
#: which does not resolve dot segments (checked against the real service below).
THROUGH_PROBES = (
    "/predict/../metrics",
    "/predict/%2e%2e/metrics",
    "/predict/..%2Fmetrics",
    "/predict/batch/../../metrics",
    "/docs/../metrics",
    "/docs/%2e%2e/metrics",
)
#: Paths the API serves to the public (with `publicApiDocs`, the docs too).
PUBLIC_PROBES = ("/predict", "/predict/batch", "/predict?explain=true", "/health", "/ready", "/model")
DOCS_PROBES = ("/docs", "/docs/swagger-ui.css", "/openapi.json")


@dataclass(frozen=True)
class Rule:
    """One listener rule, as the ALB evaluates it."""

    patterns: tuple[str, ...]
    outcome: Outcome
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Listener:
    """The rules in priority order and the default action."""

    rules: tuple[Rule, ...]
    default: Outcome


def path_matches(pattern: str, target: str) -> bool:
    """An ALB path pattern against a request target: case-sensitive, `*` any characters, `?` one, on the path only."""
    assert "[" not in pattern, f"{pattern}: fnmatch reads [...] as a class, an ALB as characters"
    return fnmatchcase(target.partition("?")[0], pattern)


def outcome(listener: Listener, method: str, target: str) -> Outcome:
    """Where the listener sends one request."""
    for rule in listener.rules:
        if rule.methods is not None and method not in rule.methods:
            continue
        if any(path_matches(pattern, target) for pattern in rule.patterns):
            return rule.outcome
    return listener.default


def _ecs_action(action: dict[str, Any]) -> Outcome:
    if action["type"] == "forward":
        return str(action["targetGroupArn"]).rsplit("-", 1)[-1]
    if action["type"] == "fixed-response":
        assert action["fixedResponse"]["messageBody"] == NOT_FOUND_BODY
        assert action["fixedResponse"]["contentType"] == "application/json"
        return str(action["fixedResponse"]["statusCode"])
    return str(action["type"])


def _ecs_rule(rule: Resource) -> Rule:
    patterns: tuple[str, ...] = ()
    methods = None
    for condition in rule.inputs["conditions"]:
        if "pathPattern" in condition:
            patterns = tuple(condition["pathPattern"]["values"])
        if "httpRequestMethod" in condition:
            methods = tuple(condition["httpRequestMethod"]["values"])
    (action,) = rule.inputs["actions"]
    return Rule(patterns, _ecs_action(action), methods)


def ecs_listeners(run: Run) -> dict[int, Listener]:
    """The ECS ALB's listeners by port, read from the program's resources."""
    rules = run.recorder.of_type("aws:lb/listenerRule:ListenerRule")
    listeners = {}
    for resource in run.recorder.of_type("aws:lb/listener:Listener"):
        own = sorted(
            (rule for rule in rules if rule.inputs["listenerArn"] == resource.state["arn"]),
            key=lambda rule: rule.inputs["priority"],
        )
        (default,) = resource.inputs["defaultActions"]
        listeners[int(resource.inputs["port"])] = Listener(tuple(map(_ecs_rule, own)), _ecs_action(default))
    return listeners


def _lbc_patterns(path: str, kind: str) -> tuple[str, ...]:
    if kind == "Exact":
        return (path,)
    assert kind == "Prefix", kind
    return ("/*",) if path == "/" else (path.rstrip("/"), path.rstrip("/") + "/*")


def _ingress_backend(ingress: dict[str, Any], backend: dict[str, Any]) -> Outcome:
    service = backend["service"]
    if service["port"].get("name") != "use-annotation":
        return str(service["name"])
    action = json.loads(ingress["metadata"]["annotations"][f"alb.ingress.kubernetes.io/actions.{service['name']}"])
    assert action["type"] == "fixed-response"
    assert action["fixedResponseConfig"]["messageBody"] == NOT_FOUND_BODY
    return str(action["fixedResponseConfig"]["statusCode"])


def ingress_listener(ingress: dict[str, Any]) -> Listener:
    """The serving listener the AWS Load Balancer Controller builds from the Ingress (one rule per path)."""
    (rule,) = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    exact = [path for path in paths if path["pathType"] == "Exact"]
    prefix = sorted((path for path in paths if path["pathType"] == "Prefix"), key=lambda p: -len(p["path"]))
    assert len(exact) + len(prefix) == len(paths), "only Exact and Prefix paths are modelled"
    rules = tuple(
        Rule(_lbc_patterns(path["path"], path["pathType"]), _ingress_backend(ingress, path["backend"]))
        for path in [*exact, *prefix]
    )
    default = ingress["spec"].get("defaultBackend")
    return Listener(rules, _ingress_backend(ingress, default) if default else "404")


def eks_ingress(run: Run) -> dict[str, Any]:
    (resource,) = run.recorder.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    return dict(integral(resource.inputs))


@pytest.fixture(scope="module")
def ecs_ui_http_run(root_run: Run) -> Run:
    """ECS with the UI and no certificate: the HTTP listener serves, the UI owns `/`."""
    return run_ecs(root_run, ui={"enabled": True})


@pytest.fixture(scope="module")
def ecs_api_https_run(root_run: Run) -> Run:
    """ECS without the UI, with a certificate and public docs: HTTPS serves, HTTP redirects."""
    return run_ecs(root_run, certificateArn=CERTIFICATE, publicApiDocs=True)


@pytest.fixture(scope="module")
def eks_api_docs_run(root_run: Run) -> Run:
    """EKS without the UI, with public docs."""
    return run_eks(root_run, publicApiDocs=True)


def serving_listeners(request: pytest.FixtureRequest) -> dict[str, tuple[Listener, bool]]:
    """Every exposure that serves (not only redirects): its listener, and whether the UI owns `/` there."""
    run = request.getfixturevalue
    return {
        "ecs api http": (ecs_listeners(run("ecs_minimal_run"))[80], False),
        "ecs api https": (ecs_listeners(run("ecs_api_https_run"))[443], False),
        "ecs ui http": (ecs_listeners(run("ecs_ui_http_run"))[80], True),
        "ecs ui https": (ecs_listeners(run("ecs_full_run"))[443], True),
        "eks api": (ingress_listener(eks_ingress(run("eks_minimal_run"))), False),
        "eks api docs": (ingress_listener(eks_ingress(run("eks_api_docs_run"))), False),
        "eks ui": (ingress_listener(eks_ingress(run("eks_full_run"))), True),
    }


def test_the_model_reads_path_patterns_as_an_alb_does() -> None:
    """The evaluator itself: what the tests below rely on."""
    assert path_matches("/predict/*", "/predict/batch")
    assert path_matches("/predict/*", "/predict/a/b")  # `*` crosses slashes
    assert path_matches("/predict", "/predict?explain=true")  # the query is not matched
    assert not path_matches("/predict", "/PREDICT")  # case-sensitive
    assert not path_matches("/predict", "/predict/")
    assert not path_matches("/predict/*", "/predict")
    listener = Listener((Rule(("/a",), "api", ("GET",)),), "404")
    assert (outcome(listener, "GET", "/a"), outcome(listener, "POST", "/a")) == ("api", "404")


def test_no_exposure_forwards_a_private_path_to_the_api(request: pytest.FixtureRequest) -> None:
    """`/metrics`, `/operator/*` and their spellings, with any method: the load balancer's 404, or the UI where it
    owns `/` (the API is never reached)."""
    for name, (listener, ui_owns_root) in serving_listeners(request).items():
        for target in BLOCKED_PROBES:
            for method in METHODS:
                got = outcome(listener, method, target)
                assert got == ("ui" if ui_owns_root else "404"), f"{name}: {method} {target} -> {got}"


def test_the_uis_own_metrics_are_refused_where_it_owns_the_root(request: pytest.FixtureRequest) -> None:
    for name, (listener, ui_owns_root) in serving_listeners(request).items():
        for path in UI_PRIVATE_PATHS:
            assert outcome(listener, "GET", path) == "404", name
            assert outcome(listener, "GET", f"{path}?families=cache_memory_bytes") == "404", name
        if ui_owns_root:
            assert outcome(listener, "GET", "/_stcore/health") == "ui", name
            assert outcome(listener, "GET", "/") == "ui", name


def test_every_exposure_forwards_the_public_paths_to_the_api(request: pytest.FixtureRequest) -> None:
    for name, (listener, ui_owns_root) in serving_listeners(request).items():
        for target in PUBLIC_PROBES:
            for method in METHODS:
                assert outcome(listener, method, target) == "api", f"{name}: {method} {target}"
        docs = "docs" in name or name == "ecs api https"
        for target in DOCS_PROBES:
            assert outcome(listener, "GET", target) == ("api" if docs else "ui" if ui_owns_root else "404"), name
        assert outcome(listener, "GET", "/") == ("ui" if ui_owns_root else "404"), name


def test_plain_http_only_redirects_where_https_serves(
    ecs_full_run: Run, ecs_api_https_run: Run, eks_full_run: Run
) -> None:
    """Port 80 with a certificate: every request, `/metrics` included, is sent to HTTPS, where the rules above apply
    (the controller gives the HTTP listener the redirect alone with `ssl-redirect`)."""
    for run in (ecs_full_run, ecs_api_https_run):
        http = ecs_listeners(run)[80]
        assert (http.rules, http.default) == ((), "redirect")
    assert eks_ingress(eks_full_run)["metadata"]["annotations"]["alb.ingress.kubernetes.io/ssl-redirect"] == "443"


def test_the_load_balancer_refuses_with_the_services_error_shape() -> None:
    body = json.loads(NOT_FOUND_BODY)
    assert set(body) == set(ErrorResponse.model_fields)  # {"error", "reason", "errors", "request_id"}
    assert body["error"] == "not_found"
    assert len(NOT_FOUND_BODY) <= 1024  # an ALB fixed response's body limit


def test_the_public_patterns_fit_the_alb() -> None:
    """Path patterns: up to 128 characters, no character an ALB refuses."""
    for pattern in (*API_PUBLIC_PATHS, *API_DOCS_PATHS, *UI_PRIVATE_PATHS):
        assert len(pattern) <= 128, pattern
        assert pattern.startswith("/"), pattern
        assert set(pattern) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.$/~\"'@:+&*?")


#: Methods sent to the real service (HEAD's answer has a length but no body, which the raw reader would wait for).
SENT_METHODS = tuple(method for method in METHODS if method != "HEAD")


def test_what_the_public_patterns_let_through_never_reaches_the_metrics(
    request: pytest.FixtureRequest, trained_model_dir: Path, tmp_path: Path
) -> None:
    """Private spellings under a public pattern reach the service (the docs' only where they are public); it does
    not resolve dot segments, so none of them is answered with the metrics."""
    listeners = [listener for listener, _ in serving_listeners(request).values()]
    for target in THROUGH_PROBES:
        assert any(outcome(listener, "GET", target) == "api" for listener in listeners), target
    with serving(str(trained_model_dir), tmp_path / "service.log") as server:
        for target in THROUGH_PROBES:
            for method in SENT_METHODS:
                with connect(server) as sock:
                    sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
                    status, _, body = read_answer(sock)
                assert status == 404, f"{method} {target} -> {status}"
                assert b"http_requests_total" not in body, f"{method} {target}"
