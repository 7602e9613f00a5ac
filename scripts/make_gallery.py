"""Regenerate the README gallery: the quick-scale figures as small PNGs in docs/figures/.

Runs ``figures.reproduce(quick=True)`` into ``--out`` (default ``ncbounds-report``; finished
cells and training runs in its store are reused, so a second call only redraws), then
writes the PNG figures at ``--dpi`` (default 100) into ``--dest`` (default
``docs/figures``). Usage, from the repository root::

    python scripts/make_gallery.py [--out ncbounds-report] [--dest docs/figures] [--dpi 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ncbounds-report", help="reproduce output folder")
    parser.add_argument("--dest", default="docs/figures", help="gallery folder")
    parser.add_argument("--dpi", type=float, default=100, help="PNG resolution (default 100)")
    parser.add_argument("--device", default="auto", help="training device (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    report = figures.reproduce(out=args.out, quick=True, device=args.device,
                               progress=False if args.quiet else None)
    written = figures.write_gallery(Path(args.out) / "results.sqlite", args.dest, dpi=args.dpi)
    print(f"report: {report}")
    for path in written:
        print(f"gallery: {path}  ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
