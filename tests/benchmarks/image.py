"""Image build time and size for each Dockerfile target: a cold build (empty container storage, empty download
caches) and a warm rebuild after a one-line code change, which shows that the dependency layers are reused.

Builds offline with buildah on the debootstrap base of the container tests (needs root, buildah, podman and
debootstrap), so the numbers are this machine's, not Docker's. Usage, from the repository root:

    uv run python -m tests.benchmarks.image [--target api --target ui] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.container.engine import ROOT, Engine, EngineError, make_context, missing_tools, train_model

#: The file each target's warm rebuild touches (a code layer, after every dependency layer).
CODE_FILE = {"api": "service/api.py", "api-nomodel": "service/api.py", "ui": "frontend/app.py"}


def measure(targets: Sequence[str], work: Path) -> dict[str, dict[str, float]]:
    """Cold build then warm rebuild of each target in a throwaway storage; returns seconds and megabytes."""
    shared = Engine.create()  # only to choose the storage driver and reuse the cached base tarball
    engine = Engine(shared.driver, work / "storage", Path(f"/run/diabetes-bench-{os.getpid()}"))
    os.environ["TMPDIR"] = str(work)  # buildah keeps RUN cache mounts (uv, pip downloads) under TMPDIR
    base = engine.base_image()
    context = make_context(work / "context", train_model(work))
    results: dict[str, dict[str, float]] = {}
    for target in targets:
        tag = f"localhost/diabetes-bench-{target}:latest"
        cold = engine.build(context, target, tag, {"BASE_IMAGE": base})
        with (context / CODE_FILE[target]).open("a") as code:
            code.write("\n# benchmark: a code change\n")
        warm = engine.build(context, target, tag, {"BASE_IMAGE": base})
        results[target] = {
            "cold_seconds": round(cold, 1),
            "warm_seconds": round(warm, 1),
            "size_mb": round(engine.image_size(tag) / 1e6, 1),
        }
        print(f"{target:12} cold {cold:6.1f} s   warm {warm:5.1f} s   {results[target]['size_mb']:6.1f} MB")
    shutil.rmtree(engine.runroot, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", action="append", choices=sorted(CODE_FILE), help="target (default: api, ui)")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "tests/benchmarks/results/image.json", help="JSON results file"
    )
    args = parser.parse_args(argv)
    if missing := missing_tools():
        print(
            f"error: install {', '.join(missing)} (apt-get install -y buildah podman runc debootstrap)",
            file=sys.stderr,
        )
        return 2
    if os.geteuid() != 0:
        print("error: run as root (debootstrap and the container storage need it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="diabetes-bench-", dir="/var/tmp") as work:
        try:
            results = measure(args.target or ["api", "ui"], Path(work))
        except EngineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"storage": Engine.create().driver, "targets": results}, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
