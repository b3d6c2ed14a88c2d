"""Build and run the project's images without a Docker daemon: buildah builds, podman runs, both offline.

Base images cannot be pulled here, so a Debian bookworm base with CPython 3.11 is made with debootstrap once
and cached as a tarball (and as an image in a dedicated container storage) under CACHE_DIR: reruns are fast.
Used by the container tests and by `tests/benchmarks/image.py`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Survives between runs: the base rootfs tarball, the container storage and buildah's cache mounts.
CACHE_DIR = Path(os.environ.get("DIABETES_CI_CACHE", "/var/tmp/diabetes-ci"))
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: What the Dockerfile expects of BASE_IMAGE: python3 (3.11), venv (for pip in the builder), CA certificates.
BASE_PACKAGES = ("python3-minimal", "python3-venv", "ca-certificates")
#: Left out of the base like the slim images do: package caches, documentation, translations.
BASE_EXCLUDES = (
    "./var/cache/apt/archives/*.deb",
    "./var/lib/apt/lists/*",
    "./usr/share/doc/*",
    "./usr/share/man/*",
    "./usr/share/info/*",
    "./usr/share/locale/*",
)
#: The host's CA bundle, mounted into RUN steps so package downloads work behind a TLS-intercepting proxy.
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
TOOLS = ("buildah", "podman", "runc")


class EngineError(RuntimeError):
    """A buildah/podman/debootstrap command failed; the message carries the command and its output."""


def missing_tools() -> list[str]:
    """Tools the container tests need that are not installed (empty when the tests can run)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if shutil.which("debootstrap") is None and not any((CACHE_DIR / "base").glob("*.tar")):
        missing.append("debootstrap")
    return missing


def run(cmd: Sequence[str], *, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise EngineError with the command and the tail of its output."""
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from exc
    if check and done.returncode != 0:
        output = (done.stdout + done.stderr)[-6000:]
        raise EngineError(f"exit {done.returncode}: {' '.join(cmd)}\n{output}")
    return done


@dataclass(frozen=True)
class Engine:
    """buildah and podman sharing one container storage of their own (never the host's default one)."""

    driver: str
    root: Path
    runroot: Path

    @classmethod
    def create(cls) -> Engine:
        """Native overlay where the filesystem supports it (fast layers), vfs otherwise or when asked."""
        wanted = os.environ.get("CONTAINER_STORAGE_DRIVER")
        for driver in [wanted] if wanted else ["overlay", "vfs"]:
            engine = cls(driver, CACHE_DIR / f"storage-{driver}", Path(f"/run/diabetes-ci/storage-{driver}"))
            if wanted or run(engine.podman("info"), timeout=60, check=False).returncode == 0:
                return engine
        raise EngineError("neither the overlay nor the vfs storage driver works")  # pragma: no cover

    def _storage(self) -> list[str]:
        return ["--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", self.driver]

    def buildah(self, *args: str) -> list[str]:
        return ["buildah", *self._storage(), *args]

    def podman(self, *args: str) -> list[str]:
        return ["podman", *self._storage(), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", *args]  # fmt: skip

    def image_exists(self, image: str) -> bool:
        return run(self.podman("image", "exists", image), check=False).returncode == 0

    def image_size(self, image: str) -> int:
        """Uncompressed size of the image in bytes, as podman reports it."""
        return int(run(self.podman("image", "inspect", "--format", "{{.Size}}", image)).stdout.strip())

    def inspect(self, image: str, template: str) -> str:
        return run(self.podman("image", "inspect", "--format", template, image)).stdout.strip()

    def base_image(self) -> str:
        """The offline Debian bookworm base (made once by debootstrap, then reused), as a local image name."""
        key = hashlib.sha256(repr((DEBIAN_SUITE, BASE_PACKAGES, BASE_EXCLUDES)).encode()).hexdigest()[:12]
        image = f"localhost/diabetes-ci-base:{DEBIAN_SUITE}-{key}"
        base_dir = CACHE_DIR / "base"
        base_dir.mkdir(parents=True, exist_ok=True)
        with (base_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test runs make the base once
            if self.image_exists(image):
                return image
            tarball = base_dir / f"{DEBIAN_SUITE}-{key}.tar"
            if not tarball.exists():
                _debootstrap_tarball(tarball)
            run(self.podman("import", "--message", "debootstrap base for the container tests", str(tarball), image))
        return image

    def build(self, context: Path, target: str, tag: str, build_args: Mapping[str, str]) -> float:
        """Build one Dockerfile target with cached layers; returns the wall time in seconds."""
        args = [f"--build-arg={name}={value}" for name, value in build_args.items()]
        if CA_BUNDLE.is_file():
            args.append(f"--volume={CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro")
        started = time.monotonic()
        run(
            self.buildah(
                "bud", "--isolation", "chroot", "--layers", "--format", "docker", "--pull=never",
                "--target", target, "--tag", tag, *args, "--file", str(context / "Dockerfile"), str(context),
            ),
            timeout=1200,
        )  # fmt: skip
        return time.monotonic() - started

    @contextmanager
    def container(
        self, image: str, env: Mapping[str, str], *, read_only: bool = True, tmp: Path | None = None
    ) -> Iterator[str]:
        """Run the image detached on the host network as the image's own user; always removed afterwards.

        A read-only container gets a world-writable tmpfs at /tmp, or `tmp` (a host directory) mounted there, as
        Fargate mounts its empty volume: root-owned, mode 0755."""
        name = f"diabetes-test-{os.getpid()}-{time.monotonic_ns()}"
        options = ["--read-only", "--read-only-tmpfs=false"] if read_only else []
        if tmp is not None:
            options += ["--volume", f"{tmp}:/tmp:rw"]
        elif read_only:
            options += ["--tmpfs", "/tmp:rw,mode=1777,size=256m"]
        env_args = [f"--env={key}={value}" for key, value in env.items()]
        try:
            run(
                self.podman(
                    "run", "--detach", "--name", name, "--network", "host", "--pull", "never",
                    "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *options, *env_args, image,
                ),
                timeout=120,
            )  # fmt: skip
            yield name
        finally:
            run(self.podman("rm", "--force", "--time", "0", name), timeout=120, check=False)

    def exec(self, container: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return run(self.podman("exec", container, *cmd), timeout=60, check=False)

    def logs(self, container: str) -> str:
        done = run(self.podman("logs", container), timeout=60, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def running(self, container: str) -> bool:
        state = run(self.podman("inspect", "--format", "{{.State.Running}}", container), check=False)
        return state.stdout.strip() == "true"

    def wait_http(self, container: str, url: str, timeout: float = 120) -> bytes:
        """Poll url until it answers 200; fail early, with the container's logs, if the container exits."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return bytes(response.read())
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
            except OSError as exc:
                last = str(exc)
            if not self.running(container):
                raise EngineError(f"container exited before {url} answered 200:\n{self.logs(container)}")
            time.sleep(0.5)
        raise EngineError(f"{url} did not answer 200 within {timeout:.0f} s ({last}):\n{self.logs(container)}")


def _debootstrap_tarball(tarball: Path) -> None:
    """debootstrap a minimal bookworm with Python 3.11 and tar it up atomically, with numeric owners."""
    if shutil.which("debootstrap") is None:
        raise EngineError("debootstrap is not installed: apt-get install -y debootstrap")
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR],
            timeout=900,
        )  # fmt: skip
        partial = Path(scratch) / "base.tar"
        excludes = [f"--exclude={pattern}" for pattern in BASE_EXCLUDES]
        run(["tar", "--numeric-owner", "--xattrs", *excludes, "-C", str(rootfs), "-cf", str(partial), "."])
        partial.replace(tarball)


def train_model(work: Path) -> Path:
    """Train a small model on synthetic rows with the project's own CLIs; returns the model directory."""
    data, model = work / "synthetic.csv", work / "model"
    for args in (
        ["ml.synthetic", "--rows", "3000", "--output", str(data)],
        ["ml.train", "--data", str(data), "--output", str(model), "--no-mlflow"],
    ):
        done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise EngineError(f"python -m {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    if not (model / "manifest.json").is_file():
        raise EngineError(f"ml.train wrote no manifest.json in {model}")
    return model


def make_context(context: Path, model_dir: Path) -> Path:
    """Copy exactly what .dockerignore lets through into `context`, with `model_dir` as artifacts/model.

    Building from a copy keeps the working tree's own artifacts/model untouched and proves that the allow-list
    is enough to build every target.
    """
    context.mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy2(ROOT / name, context / name)
    allowed = [
        line[1:].strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for relative in allowed:
        source, target = ROOT / relative, context / relative
        if relative == "artifacts/model":
            shutil.copytree(model_dir, target)
        elif source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return context
