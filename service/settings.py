"""The service's settings: one class, read from environment variables once at start.

The app (`service.api.create_app`) and the server around it (`service.server`, `python -m service`) read the same
object: the address, the keep-alive, the head, body and connection limits and the shutdown timing are settings of
the service like any other, not options of whoever starts uvicorn.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.contract import DEFAULT_BATCH_LIMIT, MAX_BATCH_LIMIT
from ml.inference.artifact import DEFAULT_MODEL_DIR
from ml.manifest import SHA256_PATTERN
from ml.schema import FEATURES

#: The shortest operator token accepted: an empty or guessable one would open the operator view to anyone.
MIN_OPERATOR_TOKEN_LENGTH = 32
#: The fewest different characters an operator token holds (`secrets.token_hex(16)` has about 14, `token_urlsafe(32)`
#: about 30): 32 of one letter passed the length alone (review 16, F6).
MIN_OPERATOR_TOKEN_CHARACTERS = 8
#: An operator token's characters: visible ASCII, which every client sends the same way. A token of other characters
#: started, then curl (UTF-8) got 401 and Python's http.client (Latin-1) 200 (review 16, F6).
OPERATOR_TOKEN_PATTERN = re.compile(r"[!-~]+")
#: A token that is a shorter one repeated (`abcdefgh` four times) is a pattern, however many characters it has.
_REPEATED = re.compile(r"(.+?)\1+", re.DOTALL)


#: The fewest connections the service is configured for, whatever the open-file limit (`service.server`).
MIN_CONNECTIONS = 16
#: A batch whose body arrives at least this fast (past its first half second) keeps its place reserved in the
#: batches' budget (`service.middleware.Admission`); a slower one holds no place there until it has all arrived (its
#: bytes count among the bodies arriving). 512 KB/s: a full 2 MB batch in 4 s. At 64 KB/s, two bodies of 2 MiB
#: (140 KB/s of upload) held the 4 MiB budget of a 512 MiB task for 30 s and nearly every other batch got 503
#: (reviews 8 and 9, R8-3, R9-3); holding a reservation now lasts at most `body_limit_bytes` / this rate.
BATCH_RESERVED_BYTES_PER_SECOND = 512 * 1024
#: A body still arriving that brought less than this over its last `BODY_RATE_WINDOW_SECONDS` may be dropped (503)
#: to make room in `max_pending_body_bytes` for a newcomer (`service.middleware.Admission`): 64 KB/s, so a 2 MB
#: batch at 100 KB/s or faster is never dropped (review 10, R10-1; review 11, R11-2).
DROPPABLE_BODY_BYTES_PER_SECOND = 64 * 1024
#: How recent the bytes are that a body arriving is judged by for that: those of its last 1 to 2 seconds, once past
#: its first second (what came then is not judged: a body sent at once has arrived by then, a burst would count as
#: fast for seconds after it).
BODY_RATE_WINDOW_SECONDS = 1.0
#: What each byte of a batch's body that has arrived reserves of what its head declared, while it keeps up: 128 KB
#: reserve a full 2 MB batch, a head alone nothing.
RESERVED_PER_BYTE_ARRIVED = 16


def _token_problem(token: str) -> str | None:
    """What is wrong with an operator token past its length and white space, if anything. Not counted: a pattern of
    eight different characters or more that is not a repetition (a person's choice); generated tokens are safe."""
    if not OPERATOR_TOKEN_PATTERN.fullmatch(token):
        return (
            "holds characters other than visible ASCII (letters, digits, punctuation), which clients send differently"
        )
    if len(set(token)) < MIN_OPERATOR_TOKEN_CHARACTERS or _REPEATED.fullmatch(token):
        fewest = MIN_OPERATOR_TOKEN_CHARACTERS
        return f"is a pattern (fewer than {fewest} different characters, or a shorter one repeated): guessable"
    return None


class Settings(BaseSettings):
    """Every knob of the service. `MODEL_URI` and `MODEL_SHA256` are read as is; the others carry `SERVICE_`."""

    # Errors name the setting and the rule, never the value: a rejected operator token must not reach the log.
    model_config = SettingsConfigDict(env_prefix="SERVICE_", frozen=True, extra="ignore", hide_input_in_errors=True)
    # extra="ignore" only because the environment holds other programs' variables too: `unknown_variables` finds
    # the mistyped SERVICE_* ones, and `python -m service` refuses to start with any.

    model_uri: str = Field(
        default=str(DEFAULT_MODEL_DIR),
        validation_alias="MODEL_URI",
        min_length=1,
        description="Model artifact to serve: a directory, s3://bucket/prefix or models:/name@alias (needs MLflow).",
    )
    model_sha256: str | None = Field(
        default=None,
        validation_alias="MODEL_SHA256",
        pattern=SHA256_PATTERN,
        description="Digest the model must have (64 lowercase hex, as `ml.train` prints it); any other artifact is "
        "refused before it is parsed and `/ready` says why. Unset: any verified artifact is served.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser, as JSON (e.g. ["http://localhost:8501"]); '
        "empty (the default) turns CORS off.",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Addresses or networks (CIDR) of the proxies in front of the service, as JSON (e.g. "
        '["10.40.0.0/20"]): from these, `X-Forwarded-For` and `X-Forwarded-Proto` give the client\'s address (the '
        "access log's `client`, and the batch line's order by client) and scheme. The stacks trust the load "
        "balancer's public subnets; behind a load balancer with the default, every request is logged from its "
        "address.",
    )
    batch_limit: int = Field(
        default=DEFAULT_BATCH_LIMIT, ge=1, le=MAX_BATCH_LIMIT, description="Most records one /predict/batch accepts."
    )
    body_limit_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body, in bytes; larger ones are refused with 413 before they are parsed.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on (the image sets `0.0.0.0`).")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    keep_alive_seconds: int = Field(
        default=75,
        gt=0,
        le=4000,
        description="How long an idle connection stays open between requests. It must outlast the load balancer's "
        "idle timeout (60 s for the API; 3,600 s when the UI shares the load balancer), so the load balancer, never "
        "the service, closes a connection: the other way round it may reuse one the service just closed (a 502).",
    )
    max_idle_connections: int = Field(
        default=4096,
        ge=1,
        le=100_000,
        description="Most connections kept open with no request under way (idle keep-alive, or opened and silent); "
        "past it a silent one is closed once it has sent nothing for a second (the oldest first: a burst's requests "
        "may come a moment after its connections), an idle keep-alive one only when a new connection is the only "
        "silent one, so idle connections cost little, a burst "
        "of silent ones never evicts the load balancer's, and no one is locked out. As many as `max_connections` "
        "(the stacks set both): at 512 below 535, keep-alive clients past 512 had their connections closed under "
        "them and lost 91% of the requests they sent on them (review 16, F8).",
    )
    max_connections: int = Field(
        default=4096,
        ge=MIN_CONNECTIONS,
        le=1_000_000,
        description="Most connections open at once, but for as many more shared by new connections (opened and silent, "
        "or with a whole request waiting or being handled: a health check is answered, not shed, among reconnects "
        "holding every place) and those lingering after an error answer; past it a connection whose request is not "
        "being handled is closed: the oldest silent one (if it had time to send), then the oldest still sending its "
        "head, then of the 64 newest still sending a body the one that sent least (answered 503), then the newest "
        "silent one if others came with it, then an idle one answered once or idle 5 s, then a new connection's request"
        " not read yet (503; a whole one, a health check, after one whose body is still to come), a keep-alive "
        "connection between two requests of its client last. Kept under the open-file limit, which the service raises "
        "to its hard limit at start.",
    )
    max_head_bytes_buffered: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="Most bytes of unfinished request heads held, all connections together; past it the connections "
        "that started their heads first are closed. Bodies have their own budget (`max_pending_body_bytes`).",
    )
    max_requests_in_flight: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Most requests handled at once, counted once their body has arrived until their answer starts; "
        "past it, 503 `overloaded` with `Retry-After: 1`. `/health`, `/ready` and `/metrics` are never refused. "
        "Batches have their own budget (`max_batch_bytes_in_flight`), and `/predict?explain=true` the explained "
        "records' (`max_explained_records`); idle connections, bodies still arriving and answers being read do not "
        "count.",
    )
    max_batch_bytes_in_flight: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Most bytes of `/predict/batch` bodies handled at once (parsed, waiting for a worker thread or "
        "scored), a stand-in for their records known before they are parsed (a 1,000-record batch is about 330 KB "
        "of compact JSON). A batch past it whose Content-Length says so waits for room, its body unread past its "
        "first bytes, up to `batch_queue_seconds`, then 503 `overloaded` with `Retry-After: 1` (a chunked one is "
        f"refused once read): a batch arriving reserves {RESERVED_PER_BYTE_ARRIVED} bytes of what it declared for "
        f"each byte of its body received while its body arrives at {BATCH_RESERVED_BYTES_PER_SECOND // 1024} KB/s "
        "or more (a slower one holds no place until it has all arrived, then is handled if it fits). Apart from "
        "`max_requests_in_flight`, so a flood of "
        "batches leaves single predictions their room and holds a bounded memory. At least `body_limit_bytes`. "
        "Bodies padded with white space count their padding.",
    )
    max_pending_body_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        le=4 * 1024 * 1024 * 1024,
        description="Most bytes of request bodies still arriving, all connections together. Bodies cost what has "
        "arrived, so a slow sender holds almost nothing. A body whose next bytes would pass it drops the bodies "
        "that brought the fewest bytes over their last "
        f"{BODY_RATE_WINDOW_SECONDS:g}-{2 * BODY_RATE_WINDOW_SECONDS:g} s (their first "
        f"{BODY_RATE_WINDOW_SECONDS:g} s is not judged), among those slower than "
        f"{DROPPABLE_BODY_BYTES_PER_SECOND // 1024} KB/s there (503 `overloaded`, counted `body_budget` in "
        "`http_connections_shed_total`), when that makes room; else it gets 503 `overloaded` itself. A body sent "
        "nearly whole then trickled (its average rate stays high) would otherwise hold its bytes until "
        "`body_timeout_seconds` (review 10, R10-1). Not counted here: bodies a batch waiting for room leaves unread "
        "(`max_batch_bytes_in_flight`), bodies still fresh, and bodies at that rate or faster: to hold the budget, a "
        "client must keep sending.",
    )
    max_body_chunks: int = Field(
        default=8192,
        ge=16,
        le=1_000_000,
        description="Most chunks in one chunked request body, and a second on one connection (a connection earns "
        "back its chunks at this many a second, so pipelined bodies of tiny chunks cannot hold the loop); past it, "
        "413. Each chunk costs the event loop a few "
        "microseconds whatever its size, so a body of one-byte chunks under the byte limit would hold it for a "
        "second; a full batch sent in 64-byte chunks has about 5,600, real clients send 1-64 KB chunks. Bodies "
        "with a Content-Length have no chunks, and trailers have the head's limits.",
    )
    max_explained_records: int = Field(
        default=2 * DEFAULT_BATCH_LIMIT,
        ge=1,
        le=100 * MAX_BATCH_LIMIT,
        description="Most records of `/predict/batch?explain=true` (and of `/predict?explain=true`, one each) being "
        "explained or waiting for a worker thread, "
        "all requests together (an explanation costs about 13 times a prediction); a batch may take at most half of "
        "what is free (so a few large batches cannot hold it against small ones), past it 503 `overloaded` with "
        "`Retry-After`. At least twice `batch_limit`. Batches and single `/predict` requests without `explain` are "
        "not counted here (they are bounded by `batch_queue_seconds` and `max_requests_in_flight`).",
    )
    batch_queue_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long a batch may wait for a worker thread (one per core; explained batches use all but one "
        "of them when there are several), and before that, its body unread, for room in "
        "`max_batch_bytes_in_flight`; past either, 503 `overloaded` with `Retry-After`. A batch whose client has "
        "gone by the time a thread is free is dropped unscored.",
    )
    max_request_line_bytes: int = Field(
        default=16 * 1024,
        ge=256,
        le=1024 * 1024,
        description="Longest request line (method, path and query); past it, 414 before more is read.",
    )
    max_header_line_bytes: int = Field(
        default=16 * 1024,
        ge=256,
        le=1024 * 1024,
        description="Longest header line (name and value); past it, 431 before more is read.",
    )
    max_head_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=4 * 1024 * 1024,
        description="Most bytes of one request's head (request line and headers); past it, 431 before more is read. "
        "With the two above, the limits of an AWS load balancer.",
    )
    max_headers: int = Field(default=100, ge=8, le=10_000, description="Most header lines in a request; past it, 431.")
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="How long a connection may take to send a request's head (from its first byte, or from the "
        "connection's start); past it, 408 and the connection closed.",
    )
    body_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        le=300,
        description="How long a request's body may take to arrive once its head has (any method that announces a "
        "body), past it 408. Slow and stalled bodies are cut sooner by `min_body_bytes_per_second` and "
        "`body_stall_seconds`, so this only bounds a body that keeps both: 120 s lets a 1,000-record batch "
        "(about 330 KB) arrive at 4 KB a second (3 KB leaves it no margin). A body still arriving when the service "
        "stops listening after SIGTERM is answered 503 at once unless, at its rate so far, it arrives within half of "
        "`shutdown_timeout_seconds` (then it is answered), so this does not lengthen a stop. Answers the client "
        "takes slowly have `min_send_bytes_per_second` and `send_timeout_seconds`.",
    )
    send_buffer_bytes: int = Field(
        default=128 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="The kernel's send buffer of each connection (Linux doubles it): what answers a client does not "
        "read may hold there, past which they wait in the service (`max_unsent_answer_bytes`). Left to the kernel it "
        "grew to 4 MB a connection. The stacks size it, with `max_connections`, from the task's memory.",
    )
    receive_buffer_bytes: int = Field(
        default=128 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="The kernel's receive buffer of each connection (Linux doubles it): what a client sends while "
        "the service is not reading (requests pipelined behind an answer still being sent) may hold there. Left to "
        "the kernel it grew to 1.3 MB a connection. The stacks size it with `send_buffer_bytes`.",
    )
    max_unsent_answer_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        le=4 * 1024 * 1024 * 1024,
        description="Most bytes of answers held in the service until their clients take them, all connections "
        "together (what the kernel's send buffers do not hold); while it is passed, a new request whose answer may not "
        "fit in the kernel's send buffer drops the answer whose client takes it slowest, among those waiting longer "
        "than `send_grace_seconds` taken slower than 16 KB/s (or 4 times `min_send_bytes_per_second`), or, when "
        "there is none, gets 503 `overloaded` with `Retry-After: 1` before its "
        "body is read; `/health`, `/ready`, `/metrics` and answers the send buffer takes whole are always answered. An "
        "answer counts from the moment its client is slower than the service until it has all left.",
    )
    send_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=300,
        description="Longest an answer may wait for a client that takes none of it; past it the connection is "
        "dropped. A client that reads, but slower than `min_send_bytes_per_second`, is dropped sooner.",
    )
    send_grace_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long an answer may wait for its client before `min_send_bytes_per_second` applies, and "
        "before it may be dropped to make room in `max_unsent_answer_bytes` for a new request.",
    )
    min_send_bytes_per_second: int = Field(
        default=4096,
        ge=0,
        le=1024 * 1024 * 1024,
        description="Slowest a client may take an answer the service holds for it (past the kernel's send buffer), "
        "averaged from when the answer first waited for it, after `send_grace_seconds`; slower, the connection is "
        "dropped, its answer cut (logged `answer_dropped`, counted in `http_connections_shed_total`). A client "
        "reading a 1,000-record batch's answer at 700 bytes a second held it for 14 minutes. 0 turns it off. "
        "Answers that fit in the kernel's send buffer are not measured by it.",
    )
    body_grace_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long a request's body may take to start arriving once its head has, before "
        "`min_body_bytes_per_second` applies (`body_timeout_seconds` applies whatever this is).",
    )
    min_body_bytes_per_second: int = Field(
        default=1024,
        ge=0,
        le=1024 * 1024 * 1024,
        description="Slowest a body may arrive, averaged from the end of its head after `body_grace_seconds`; "
        "slower, 408 and the connection closed (a body trickled a byte a second would otherwise hold a connection "
        "for all of `body_timeout_seconds`). 0 turns it off. Heads (`header_timeout_seconds`) and answers the "
        "client reads slowly are not measured by it.",
    )
    body_stall_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="Longest a request's body may pause once it started arriving; past it, 408 and the connection "
        "closed (a body sent nearly whole then stalled keeps `min_body_bytes_per_second`'s average, and would hold "
        "its bytes of `max_pending_body_bytes` until `body_timeout_seconds`). 0 turns it off. A body that has not "
        "started is left to `body_grace_seconds`; heads and answers the client reads slowly are not measured by it.",
    )
    drain_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="After SIGTERM, how long `/ready` answers 503 while every request is still served (each answer "
        "closes its connection), so load balancers stop sending before the service stops listening.",
    )
    shutdown_timeout_seconds: int = Field(
        default=20,
        gt=0,
        le=600,
        description="Then how long the requests already accepted may take to finish before they are cancelled; a "
        "body still arriving, or one whose head ends after the listener closed, has half of it, then 503 "
        "`shutting_down`. `drain_seconds` plus this must stay under `stop_timeout_seconds`.",
    )
    stop_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="The platform's stop timeout (30 s on ECS and Kubernetes): after SIGTERM the process exits within "
        "it however busy it is, and `drain_seconds` + `shutdown_timeout_seconds` must leave a second of it.",
    )
    explain_top_k: int = Field(default=5, ge=1, le=len(FEATURES), description="Features listed in an explanation.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the JSON logs on standard output."
    )
    access_log: bool = Field(default=True, description="Log one JSON line per request.")
    operator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for `GET /operator/model` (where the model came from, what it was trained on and "
        f"with, why it is not loaded), at least {MIN_OPERATOR_TOKEN_LENGTH} visible ASCII characters, "
        f"{MIN_OPERATOR_TOKEN_CHARACTERS} or more of them different and not a shorter token repeated (e.g. "
        '`python -c "import secrets; print(secrets.token_urlsafe(32))"`); unset (the default), that view does not '
        "exist and those details are only in the logs. Any other token stops the service at start.",
    )
    docs_enabled: bool = Field(
        default=True,
        description="Serve `/docs` (Swagger UI, from the service itself) and `/openapi.json`; the deployed stacks "
        "turn them off unless `publicApiDocs` is set.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        """Each an address or a network as uvicorn reads it (strictly: with host bits set, it trusted no one,
        silently), and none that trusts every address."""
        for value in values:
            try:
                network = None if value == "*" else ipaddress.ip_network(value)
            except ValueError:
                raise ValueError(
                    f"SERVICE_FORWARDED_ALLOW_IPS holds {value[:60]!r}, not an address or a network (CIDR, its host "
                    "bits zero: 10.40.0.0/20, not 10.40.1.5/20); name the proxies' addresses"
                ) from None
            if network is None or network.prefixlen == 0:
                raise ValueError(
                    f"SERVICE_FORWARDED_ALLOW_IPS holds {value!r}, every address: any client could choose the "
                    "address it is logged from; name the proxies' addresses"
                )
        return values

    @field_validator("operator_token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value().strip()) < MIN_OPERATOR_TOKEN_LENGTH:
            raise ValueError(
                f"SERVICE_OPERATOR_TOKEN must be at least {MIN_OPERATOR_TOKEN_LENGTH} characters (it is "
                f"{len(token.get_secret_value().strip())}); an empty or short token would let anyone read the "
                "operator view. Unset it to turn the view off."
            )
        if token is not None and token.get_secret_value() != token.get_secret_value().strip():
            raise ValueError(
                "SERVICE_OPERATOR_TOKEN starts or ends with white space, which no Authorization header carries, so "
                "no one could use it; remove the white space"
            )
        problem = None if token is None else _token_problem(token.get_secret_value())
        if problem is not None:
            raise ValueError(
                f"SERVICE_OPERATOR_TOKEN {problem}; make one with "
                '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
            )
        return token

    @model_validator(mode="after")
    def _heads_fit(self) -> Settings:
        if self.max_request_line_bytes > self.max_head_bytes or self.max_header_line_bytes > self.max_head_bytes:
            raise ValueError("max_request_line_bytes and max_header_line_bytes must not exceed max_head_bytes")
        if self.max_pending_body_bytes < self.body_limit_bytes:
            raise ValueError(
                f"max_pending_body_bytes ({self.max_pending_body_bytes:,}) must be at least body_limit_bytes "
                f"({self.body_limit_bytes:,}), or every body larger than it is refused as overloaded"
            )
        if self.max_batch_bytes_in_flight < self.body_limit_bytes:
            raise ValueError(
                f"max_batch_bytes_in_flight ({self.max_batch_bytes_in_flight:,}) must be at least body_limit_bytes "
                f"({self.body_limit_bytes:,}), or a batch body of the largest size is always refused as overloaded"
            )
        if self.max_explained_records < 2 * self.batch_limit:
            raise ValueError(
                f"max_explained_records must be at least twice batch_limit ({2 * self.batch_limit:,}): a batch may "
                "take half of what is free, so a full batch with explain=true would always be refused as overloaded"
            )
        if self.max_head_bytes_buffered < self.max_head_bytes:
            raise ValueError("max_head_bytes_buffered must be at least max_head_bytes, or no full head fits")
        if self.drain_seconds + self.shutdown_timeout_seconds > self.stop_timeout_seconds - 1:
            raise ValueError(
                f"drain_seconds + shutdown_timeout_seconds ({self.drain_seconds + self.shutdown_timeout_seconds:g} s) "
                f"must leave a second of stop_timeout_seconds ({self.stop_timeout_seconds:g} s): the platform kills "
                "the task at its stop timeout, cutting off the requests still being answered"
            )
        return self


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The `SERVICE_*` variables in `environ` that name no setting (a typo would otherwise be ignored silently)."""
    known = {f"SERVICE_{name.upper()}" for name in Settings.model_fields}
    return sorted(name for name in environ if name.upper().startswith("SERVICE_") and name.upper() not in known)
