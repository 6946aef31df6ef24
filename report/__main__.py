"""`python -m report runs/<name> [--out FILE] [--samples N]`: write the run's self-contained report.html."""

from __future__ import annotations

import argparse
import sys

from report.page import write_report
from report.runfiles import RunFileError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m report", description=__doc__)
    parser.add_argument("run", help="the run folder, e.g. runs/default")
    parser.add_argument("--out", default=None, help="where to write (default: <run>/report.html)")
    parser.add_argument("--samples", type=int, default=3, help="sample conversations per stage")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.run, args.out, args.samples)
    except (FileNotFoundError, RunFileError) as err:
        print(f"report: {err}", file=sys.stderr)
        return 1
    print(f"report written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
