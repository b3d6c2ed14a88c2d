"""`python -m ml.download`: get the real BRFSS 2015 file into `data/` (see `ml.training.real_data`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ml.schema import REAL_DATA_FILE
from ml.training.data import DataValidationError
from ml.training.real_data import (
    DEFAULT_OUTPUT_DIR,
    DEFAULT_TIMEOUT_S,
    KAGGLE_DATASET,
    DownloadError,
    alternatives,
    error_text,
    existing_file,
    fetch_from_kaggle,
    fetch_from_url,
    summary,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml.download",
        description=f"Download the Kaggle 3-class BRFSS 2015 file ({REAL_DATA_FILE}), validate it and "
        "print its rows, class counts and sha256.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help=f"folder to put the file in (default: {DEFAULT_OUTPUT_DIR})",
    )
    parser.add_argument(
        "--url",
        help="download from this mirror instead of Kaggle: a .csv, a .csv.gz, or a .zip that holds "
        f"{REAL_DATA_FILE} (the format is recognised from the content)",
    )
    parser.add_argument(
        "--kaggle-handle",
        default=KAGGLE_DATASET,
        help=f"Kaggle dataset handle, optionally with /versions/N (default: {KAGGLE_DATASET})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for the mirror to connect or send data (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--force", action="store_true", help="download again even if the file is already in --output-dir"
    )
    args = parser.parse_args(argv)
    output_dir: Path = args.output_dir
    try:
        present = existing_file(output_dir)
        if present is not None and not args.force:
            print(f"already present (use --force to download again): {summary(present)}")
            return 0
        output_dir.mkdir(parents=True, exist_ok=True)
        if args.url:
            path = fetch_from_url(args.url, output_dir, timeout=args.timeout)
        else:
            path = fetch_from_kaggle(output_dir, handle=args.kaggle_handle, force=args.force)
        print(f"downloaded and validated: {summary(path)}")
        return 0
    except DownloadError as err:
        print(f"error: {err}\n{alternatives(output_dir)}", file=sys.stderr)
    except DataValidationError as err:
        print(
            f"error: the file already in {output_dir} is not valid:\n{err}\nUse --force to replace it.",
            file=sys.stderr,
        )
    except OSError as err:
        print(f"error: cannot write to {output_dir}: {error_text(err)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted; nothing was installed", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
