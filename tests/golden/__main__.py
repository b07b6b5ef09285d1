"""``python -m tests.golden regen|check|diff [NAME ...]`` from the repository root.

* ``regen``: run the commands and store their outputs in tests/golden/data/ — commit
  the result with a message that says why the numbers changed.
* ``check``: compare fresh outputs with the stored ones, as tests/test_golden.py does.
* ``diff``: print, per entry, the largest difference of each array or column and the
  tolerance (used to choose tolerances across library versions); exit 1 if any fails.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import compare, load_manifest, produce, regen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("regen", "check", "diff"))
    ap.add_argument("names", nargs="*", help="entries (default: all)")
    args = ap.parse_args(argv)
    entries = load_manifest()
    if args.names:
        unknown = set(args.names) - {e.name for e in entries}
        if unknown:
            ap.error(f"unknown entries: {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e.name in args.names]
    if args.action == "regen":
        regen(entries)
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="featx-golden-") as tmp:
        for e in entries:
            d = compare(e, produce(e, Path(tmp)))
            failed += bool(d.problems)
            if args.action == "diff":
                worst = max(d.worst.values(), default=0.0)
                print(f"{e.name:24s} max {worst:.3g}  (tolerance {e.atol})  "
                      + ", ".join(f"{k}={v:.3g}" for k, v in sorted(d.worst.items()) if v))
            for p in d.problems:
                print(f"  FAIL {p}")
            if args.action == "check" and not d.problems:
                print(f"{e.name}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
