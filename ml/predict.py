"""`python -m ml.predict`: predict every row of a CSV or Parquet file with a trained model (the batch command line).

The work is `ml.batch.scoring.score_file` (chunked, bounded memory, all cores), driven by `ml.batch.command`. This
module only makes a stop at any moment clean: Ctrl-C, SIGTERM and SIGHUP during the seconds of start-up (imports,
model loading) end the command with a line, not a traceback, and during scoring leave no file behind.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from ml.batch.signals import Stopped, exit_code, stop_signals_raise

#: When the process started to run this module: the summary's time counts the imports and the model loading.
_STARTED = time.perf_counter()


def main(argv: Sequence[str] | None = None, *, started: float | None = None) -> int:
    """Run the command; `started` is when its time began (now, when called from Python)."""
    started = time.perf_counter() if started is None else started
    with stop_signals_raise():
        try:
            from ml.batch.command import run  # seconds of imports: pandas, pyarrow, LightGBM

            return run(argv, started)
        except (KeyboardInterrupt, Stopped) as exc:  # during start-up; scoring reports its own
            print("interrupted while starting: nothing was written", file=sys.stderr)
            return exit_code(exc)


if __name__ == "__main__":
    try:
        raise SystemExit(main(started=_STARTED))
    except KeyboardInterrupt:  # in the instant before main's handlers
        raise SystemExit(130) from None
