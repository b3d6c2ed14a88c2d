"""The API's memory-bearing limits, derived from the memory its container has (ECS task or EKS pod).

The service's own defaults (service/settings.py) are sized for a large machine: 64 requests in flight, each up to a
2 MiB body that costs several times its size while it is parsed and scored, 128 MiB of bodies arriving and 32 MiB of
heads. On the 512 MiB task the stacks deploy by default, a flood of valid batches from one client passed 770 MB
(review 4, R4-1): an out-of-memory kill, every request in flight lost. So the stacks set those limits from the
container's memory, here and nowhere else, and both platforms put the result in the API's environment: an operator
reads them in the task definition or the Deployment, and a bigger task raises them (never past the service's own
defaults). The service itself does not look at its cgroup: the same image with the same variables behaves the same
everywhere. A new memory-bearing setting of the service is one more field of `ServiceLimits` (its variable follows).

The costs below are measured (tests/benchmarks/batch_flood_memory.py: a flood of 1,000-record batches padded to the
body limit, peak resident memory per request in flight); tests/stacks/test_service_limits.py checks that what is
derived is accepted by the service's `Settings` and fits the memory for every Fargate size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MIB = 1024 * 1024
KIB = 1024
#: The largest request body, as the service's `body_limit_bytes` default (the stacks do not change it).
BODY_LIMIT_BYTES = 2 * MIB
#: The process at rest with the model loaded (85 MB measured) and what it keeps after a flood (150-170 MB with the
#: image's `MALLOC_MMAP_THRESHOLD_`: the allocator keeps some freed memory for reuse).
RESIDENT_MIB = 160
#: Kept out of the budget for what the process's resident memory does not show but the container is charged and no
#: limit bounds: page cache, the runtime's own agents, sockets closing.
RESERVE_FRACTION = 0.15
#: Peak memory of one request in flight with a body at the limit: the body's bytes, its joined copy, the decoded
#: text, the parsed JSON, 1,000 validated records, the rows and the answer (about 8 MiB measured in floods of 2 MB
#: batches, 4 times the body; 6 times here, for the allocator's fragmentation and a margin).
REQUEST_COST_BYTES = 6 * BODY_LIMIT_BYTES
#: Memory a byte of a body still arriving (or of a head) holds: its chunk, and its share of the joined copy.
ARRIVING_BYTE_COST = 2
#: The kernel's socket buffers of a connection at their largest, the service's defaults (`send_buffer_bytes`,
#: `receive_buffer_bytes`), given to tasks of `FULL_BUFFERS_MIB` or more; smaller tasks get less, in proportion, never
#: under `MIN_SOCKET_BUFFER_BYTES` (16 KiB, two of them in flight a round trip, 32 MB/s at 1 ms).
SOCKET_BUFFER_BYTES = 128 * KIB
FULL_BUFFERS_MIB = 4096
MIN_SOCKET_BUFFER_BYTES = 16 * KIB
#: Linux doubles the size a socket buffer is set to (and charges the container, cgroup v2, for what it holds).
KERNEL_BUFFER_FACTOR = 2
#: The process's own memory for an open connection (its protocol, parser and transport): 19 KB measured with 2,000
#: connections (review 5, R5-4), with a margin.
CONNECTION_PROCESS_BYTES = 32 * KIB
#: The service's own ceiling on connections (`max_connections`' default).
MAX_CONNECTIONS = 4096
#: How the budget (the memory less the reserve and the resident process) is shared, each capped at the service's
#: default: requests in flight, bodies arriving, heads, answers held for slow clients, the connections' buffers.
SHARES = {"requests": 0.50, "bodies": 0.20, "heads": 0.05, "answers": 0.10, "connections": 0.15}


@dataclass(frozen=True)
class ServiceLimits:
    """The service settings that bound its memory, for one container size."""

    max_requests_in_flight: int
    max_pending_body_bytes: int
    max_head_bytes_buffered: int
    max_unsent_answer_bytes: int
    max_connections: int
    max_idle_connections: int
    send_buffer_bytes: int
    receive_buffer_bytes: int

    def environment(self) -> dict[str, str]:
        """As the service reads them (`SERVICE_` and the setting's name, upper case)."""
        return {f"SERVICE_{name.upper()}": str(value) for name, value in vars(self).items()}

    def connection_cost_bytes(self) -> int:
        """What one connection may hold at worst: both kernel buffers full (a client that reads nothing, with
        requests pipelined behind its answer) and the process's share."""
        return KERNEL_BUFFER_FACTOR * (self.send_buffer_bytes + self.receive_buffer_bytes) + CONNECTION_PROCESS_BYTES

    def worst_case_bytes(self) -> int:
        """What the service may hold at once under these limits, over its resident memory: every request in flight
        at the body limit, the budgets of bodies, heads and answers full, every connection's buffers full."""
        return (
            self.max_requests_in_flight * REQUEST_COST_BYTES
            + (self.max_pending_body_bytes + self.max_head_bytes_buffered) * ARRIVING_BYTE_COST
            + self.max_unsent_answer_bytes
            + self.max_connections * self.connection_cost_bytes()
        )


def service_limits(memory_mib: int) -> ServiceLimits:
    """The limits for a container of `memory_mib`: its memory less the reserve and the resident process, shared as
    `SHARES` says, each capped at the service's default; connections take what the others leave (at least their
    share: review 5, R5-4, the default 4,096 connections of 190 KB of send buffer each passed a 512 MiB task), their
    buffers smaller on smaller tasks so that a few hundred still fit.

    Raises ValueError when the container is too small for one request at the body limit.
    """
    budget = int(memory_mib * MIB * (1 - RESERVE_FRACTION)) - RESIDENT_MIB * MIB
    if budget * SHARES["requests"] < REQUEST_COST_BYTES:
        raise ValueError(
            f"{memory_mib} MiB leaves no room for one request at the {BODY_LIMIT_BYTES // MIB} MiB body limit once "
            f"the service's {RESIDENT_MIB} MiB are counted: give the API more memory"
        )

    def share(name: str, cost: int, floor: int, ceiling: int) -> int:
        return min(ceiling, max(floor, int(budget * SHARES[name]) // cost // MIB)) * MIB

    buffer = max(MIN_SOCKET_BUFFER_BYTES, SOCKET_BUFFER_BYTES * min(memory_mib, FULL_BUFFERS_MIB) // FULL_BUFFERS_MIB)
    limits = ServiceLimits(
        max_requests_in_flight=min(64, int(budget * SHARES["requests"]) // REQUEST_COST_BYTES),
        max_pending_body_bytes=share("bodies", ARRIVING_BYTE_COST, 2, 128),
        max_head_bytes_buffered=share("heads", ARRIVING_BYTE_COST, 1, 32),
        max_unsent_answer_bytes=share("answers", 1, 1, 64),
        max_connections=0,
        max_idle_connections=0,
        send_buffer_bytes=buffer,
        receive_buffer_bytes=buffer,
    )
    left = budget - limits.worst_case_bytes()  # at least the connections' share: the others are rounded down
    connections = min(MAX_CONNECTIONS, left // limits.connection_cost_bytes())
    # every connection may be a client's idle keep-alive one (their buffers are counted above): fewer, and those past
    # them had theirs closed under them as new ones opened (review 16, F8)
    return replace(limits, max_connections=connections, max_idle_connections=connections)
