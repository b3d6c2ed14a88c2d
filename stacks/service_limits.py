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

from dataclasses import dataclass

MIB = 1024 * 1024
#: The largest request body, as the service's `body_limit_bytes` default (the stacks do not change it).
BODY_LIMIT_BYTES = 2 * MIB
#: The process at rest with the model loaded (85 MB measured) and what it keeps after a flood (150-170 MB with the
#: image's `MALLOC_MMAP_THRESHOLD_`: the allocator keeps some freed memory for reuse).
RESIDENT_MIB = 160
#: Kept out of the budget for what the process's resident memory does not show but the container is charged:
#: kernel socket buffers (cgroup v2 charges them to the container), page cache, the runtime's own agents.
RESERVE_FRACTION = 0.15
#: Peak memory of one request in flight with a body at the limit: the body's bytes, its joined copy, the decoded
#: text, the parsed JSON, 1,000 validated records, the rows and the answer (about 8 MiB measured in floods of 2 MB
#: batches, 4 times the body; 6 times here, for the allocator's fragmentation and a margin).
REQUEST_COST_BYTES = 6 * BODY_LIMIT_BYTES
#: Memory a byte of a body still arriving (or of a head) holds: its chunk, and its share of the joined copy.
ARRIVING_BYTE_COST = 2


@dataclass(frozen=True)
class ServiceLimits:
    """The service settings that bound its memory, for one container size."""

    max_requests_in_flight: int
    max_pending_body_bytes: int
    max_head_bytes_buffered: int

    def environment(self) -> dict[str, str]:
        """As the service reads them (`SERVICE_` and the setting's name, upper case)."""
        return {f"SERVICE_{name.upper()}": str(value) for name, value in vars(self).items()}

    def worst_case_bytes(self) -> int:
        """What the service may hold at once under these limits, over its resident memory."""
        return (
            self.max_requests_in_flight * REQUEST_COST_BYTES
            + (self.max_pending_body_bytes + self.max_head_bytes_buffered) * ARRIVING_BYTE_COST
        )


def service_limits(memory_mib: int) -> ServiceLimits:
    """The limits for a container of `memory_mib`: its memory less the reserve and the resident process, shared 60%
    to requests in flight, 30% to bodies arriving and 10% to heads, each capped at the service's default.

    Raises ValueError when the container is too small for one request at the body limit.
    """
    budget = int(memory_mib * MIB * (1 - RESERVE_FRACTION)) - RESIDENT_MIB * MIB
    if budget < REQUEST_COST_BYTES + 2 * BODY_LIMIT_BYTES * ARRIVING_BYTE_COST:
        raise ValueError(
            f"{memory_mib} MiB leaves no room for one request at the {BODY_LIMIT_BYTES // MIB} MiB body limit once "
            f"the service's {RESIDENT_MIB} MiB are counted: give the API more memory"
        )
    return ServiceLimits(
        max_requests_in_flight=min(64, int(budget * 0.6) // REQUEST_COST_BYTES),
        max_pending_body_bytes=min(128, max(2, int(budget * 0.3) // ARRIVING_BYTE_COST // MIB)) * MIB,
        max_head_bytes_buffered=min(32, max(1, int(budget * 0.1) // ARRIVING_BYTE_COST // MIB)) * MIB,
    )
