"""`python -m chatworld --out DIR [--seed N] [--scale F]`: write the world and print its sizes."""

from __future__ import annotations

import argparse
import json
import time

from chatworld.world import MANIFEST, write_world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chatworld", description=__doc__)
    parser.add_argument(
        "--out", required=True, help="directory to write the world into (replaced if it is a world)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every file's record count")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = write_world(args.out, seed=args.seed, scale=args.scale)
    sizes = json.loads((out / MANIFEST).read_text())["sizes"]
    for name, count in sizes.items():
        print(f"{count:7d}  {name}")
    print(
        f"wrote {out} in {time.perf_counter() - start:.1f} s (schema and oracle rules: {out / 'README.md'})"
    )


if __name__ == "__main__":
    main()
