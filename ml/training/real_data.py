"""Fetch the Kaggle 3-class BRFSS 2015 file into `data/` (via kagglehub, or from any mirror URL).

The file only lands under its final name after it downloaded completely and passed `ml.training.data` validation,
so a half-written or wrong file (e.g. a binary Kaggle file, an HTML error page) never shadows a good one.
Every failure ends in one message that says what failed and how else to get the file; no traceback.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path

from ml.inference.digest import file_sha256
from ml.schema import CLASSES, REAL_DATA_FILE, TARGET
from ml.training.data import DataValidationError, read_data_file

KAGGLE_DATASET = "alexteboul/diabetes-health-indicators-dataset"
DEFAULT_OUTPUT_DIR = Path("data")
DEFAULT_TIMEOUT_S = 30.0
#: Refuse downloads or archive members larger than this (the real file is ~23 MB unpacked).
MAX_BYTES = 1 << 30
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"


class DownloadError(RuntimeError):
    """The file could not be fetched or is not the expected file; the message is for a person."""


def alternatives(output_dir: Path) -> str:
    return (
        "Alternatives:\n"
        f"  - download from a mirror: python -m ml.download --url URL  (a .csv, .csv.gz, or a .zip holding "
        f"{REAL_DATA_FILE})\n"
        f"  - or place the file yourself at {output_dir / REAL_DATA_FILE} (or .csv.gz)\n"
        "  - or work on synthetic data: python -m ml.synthetic --output data/synthetic.csv.gz"
    )


def existing_file(output_dir: Path) -> Path | None:
    """The real file already in `output_dir` (plain or gzipped), if any."""
    for name in (REAL_DATA_FILE, f"{REAL_DATA_FILE}.gz"):
        if (output_dir / name).is_file():
            return output_dir / name
    return None


def _temp_path(output_dir: Path, suffix: str) -> Path:
    """A fresh hidden name in `output_dir` (same file system, so the final rename is atomic)."""
    return output_dir / f".download-{uuid.uuid4().hex}{suffix}"


def _install(candidate: Path, output_dir: Path, final_name: str, origin: str) -> Path:
    """Validate a fully written temp file, then move it into place atomically (replacing older copies)."""
    try:
        read_data_file(candidate)
    except DataValidationError as err:
        message = str(err).replace(str(candidate), origin)
        raise DownloadError(f"the downloaded file is not the expected 3-class file:\n{message}") from None
    final = output_dir / final_name
    os.replace(candidate, final)
    for name in (REAL_DATA_FILE, f"{REAL_DATA_FILE}.gz"):
        if name != final_name:
            (output_dir / name).unlink(missing_ok=True)
    return final


def error_text(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first[:300]}" if first else type(err).__name__


def fetch_from_kaggle(output_dir: Path, *, handle: str = KAGGLE_DATASET, force: bool = False) -> Path:
    """Download the dataset with kagglehub (anonymous for this public dataset) and copy the 3-class file."""
    try:
        import kagglehub

        folder = Path(kagglehub.dataset_download(handle, force_download=force))
    except Exception as err:  # kagglehub raises requests, HTTP and its own errors alike
        raise DownloadError(
            f"could not download the Kaggle dataset {handle!r}: {error_text(err)}. Public datasets download "
            "without an account, so Kaggle is most likely unreachable from here (no network, or a proxy)."
        ) from None
    source = next((p for p in folder.rglob(REAL_DATA_FILE) if p.is_file()), None)
    if source is None:
        found = ", ".join(sorted(p.name for p in folder.rglob("*") if p.is_file())) or "nothing"
        raise DownloadError(f"the Kaggle dataset {handle!r} holds no {REAL_DATA_FILE} (found: {found})")
    candidate = _temp_path(output_dir, ".csv")
    try:
        shutil.copyfile(source, candidate)
        return _install(candidate, output_dir, REAL_DATA_FILE, f"{handle}/{REAL_DATA_FILE}")
    finally:
        candidate.unlink(missing_ok=True)


def _stream(url: str, target: Path, timeout: float) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in {"http", "https"}:
        raise DownloadError(f"--url must be an http:// or https:// URL, got {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "diabetes-status-downloader"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as out:  # noqa: S310
            size = 0
            while block := response.read(_CHUNK):
                size += len(block)
                if size > MAX_BYTES:
                    raise DownloadError(f"{url} is larger than {MAX_BYTES >> 20} MiB; not the expected file")
                out.write(block)
    except urllib.error.HTTPError as err:
        raise DownloadError(f"the server answered {err.code} {err.reason} for {url}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise DownloadError(f"no answer from {url} within {timeout:g} s (raise --timeout?)") from None
        reason = err.reason if isinstance(err.reason, str) else error_text(err.reason)
        raise DownloadError(f"cannot reach {url}: {reason}") from None
    except TimeoutError:
        raise DownloadError(f"no answer from {url} within {timeout:g} s (raise --timeout?)") from None
    except OSError as err:
        raise DownloadError(f"download from {url} failed: {error_text(err)}") from None


def _unzip(archive: Path, output_dir: Path) -> Path:
    """Extract the 3-class file (plain or .gz) from a zip; the other Kaggle files are ignored."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {Path(info.filename).name: info for info in zf.infolist() if not info.is_dir()}
            for name in (REAL_DATA_FILE, f"{REAL_DATA_FILE}.gz"):
                info = members.get(name)
                if info is None:
                    continue
                if info.file_size > MAX_BYTES:
                    raise DownloadError(f"{name} in the zip is larger than {MAX_BYTES >> 20} MiB")
                candidate = _temp_path(output_dir, ".csv.gz" if name.endswith(".gz") else ".csv")
                with zf.open(info) as src, open(candidate, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                return candidate
    except zipfile.BadZipFile as err:
        raise DownloadError(f"the downloaded zip is damaged: {err}") from None
    listed = ", ".join(sorted(members)) or "no files"
    raise DownloadError(f"the zip holds no {REAL_DATA_FILE} (it holds: {listed})")


def fetch_from_url(url: str, output_dir: Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Stream `url` (.csv, .csv.gz or .zip, told apart by content) to a temp file; validate; install."""
    raw = _temp_path(output_dir, ".part")
    candidate: Path | None = None
    try:
        _stream(url, raw, timeout)
        with open(raw, "rb") as handle:
            magic = handle.read(4)
        if magic.startswith(_ZIP_MAGIC):
            candidate = _unzip(raw, output_dir)
        else:
            candidate = raw.with_suffix(".csv.gz" if magic.startswith(_GZIP_MAGIC) else ".csv")
            os.replace(raw, candidate)
        final_name = REAL_DATA_FILE + (".gz" if candidate.name.endswith(".gz") else "")
        return _install(candidate, output_dir, final_name, url)
    finally:
        raw.unlink(missing_ok=True)
        if candidate is not None:
            candidate.unlink(missing_ok=True)


def summary(path: Path) -> str:
    """Rows, class counts and sha256 of a validated data file."""
    frame = read_data_file(path)
    counts = frame[TARGET].value_counts()
    classes = ", ".join(f"{c.id} {c.name}: {int(counts.get(c.id, 0)):,}" for c in CLASSES)
    return f"{path}\n  rows: {len(frame):,}\n  classes: {classes}\n  sha256: {file_sha256(path)}"
