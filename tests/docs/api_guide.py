"""Run the API guide's command blocks against a live service, as a reader would, one shell session per guide.

The guide's first `bash` block starts the service; every other `bash` block runs in order in one working folder
(so `person.json` written by one block is there for the next), with the guide's address replaced by the live one.
A `json` block right after a `bash` block is that command's answer: the docs test checks the live answer has the same
shape, and `--write` replaces it with the live answer (how the guide's examples are refreshed from a model).

    uv run python -m tests.docs.api_guide --model artifacts/model --write
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import ROOT, free_port, running_server

GUIDE = ROOT / "docs" / "api-guide.md"
GUIDE_URL = "http://127.0.0.1:8000"
#: How the guide starts the service.
SERVER = "uv run python -m service"
_FENCE = re.compile(r"^```(?P<lang>[\w{}]+)[^\n]*\n(?P<body>.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    start: int
    end: int


@dataclass(frozen=True)
class Step:
    """A command of the guide and, when the guide shows one, the answer it shows."""

    command: Block
    answer: Block | None


def blocks(text: str) -> list[Block]:
    return [Block(m["lang"], m["body"], m.start("body"), m.end("body")) for m in _FENCE.finditer(text)]


def server_command(text: str) -> str:
    """The guide's block that starts the service."""
    return next(b.body for b in blocks(text) if b.lang == "bash" and SERVER in b.body)


def steps(text: str) -> list[Step]:
    """Every other `bash` block, with the `json` block that follows it, if any."""
    found = blocks(text)
    result = []
    for i, block in enumerate(found):
        if block.lang != "bash" or SERVER in block.body:
            continue
        following = found[i + 1] if i + 1 < len(found) else None
        result.append(Step(block, following if following is not None and following.lang == "json" else None))
    return result


@contextmanager
def guide_server(text: str, model: Path, log: Path) -> Iterator[str]:
    """The guide's own server command, on a free port, serving `model`."""
    port = free_port()
    command = server_command(text).replace("SERVICE_PORT=8000", f"SERVICE_PORT={port}")
    command = command.replace("MODEL_URI=artifacts/model", f"MODEL_URI={model}")
    env = {**os.environ, "SERVICE_ACCESS_LOG": "false"}
    with running_server(["bash", "-c", command], f"http://127.0.0.1:{port}/health", log, env=env, cwd=ROOT):
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield url


def _wait_ready(url: str) -> None:
    import time
    import urllib.request

    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url}/ready never answered 200")


def run(step: Step, url: str, workdir: Path) -> str:
    """Run one command block with bash -euo pipefail against `url`; its standard output."""
    script = step.command.body.replace(GUIDE_URL, url)
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=workdir, capture_output=True, text=True, timeout=60, check=False
    )
    if completed.returncode != 0:
        raise AssertionError(f"guide command failed ({completed.returncode}):\n{script}\n{completed.stderr}")
    return completed.stdout


def shape(value: Any) -> Any:
    """What a JSON value looks like, without its numbers and texts: keys, list shapes and scalar kinds."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return "string"


def refreshed(text: str, answers: Sequence[tuple[Block, str]]) -> str:
    """The guide with each shown answer replaced by the live one, pretty-printed."""
    for block, live in sorted(answers, key=lambda pair: -pair[0].start):
        pretty = json.dumps(json.loads(live), indent=2) + "\n"
        text = text[: block.start] + pretty + text[block.end :]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.docs.api_guide", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="artifact directory to serve")
    parser.add_argument("--write", action="store_true", help="replace the guide's answers by the live ones")
    args = parser.parse_args(argv)
    text = GUIDE.read_text(encoding="utf-8")
    with (
        tempfile.TemporaryDirectory() as tmp,
        guide_server(text, args.model.resolve(), Path(tmp) / "server.log") as url,
    ):
        answers = [(step.answer, run(step, url, Path(tmp))) for step in steps(text)]
    shown = [(block, live) for block, live in answers if block is not None]
    if args.write:
        GUIDE.write_text(refreshed(text, shown), encoding="utf-8")
        print(f"refreshed {len(shown)} answers in {GUIDE}")
    else:
        print("\n\n".join(live for _, live in shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
