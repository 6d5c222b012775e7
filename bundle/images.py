"""The pinned images, for scripts:

    python -m bundle.images [--values FILE]... ref SERVICE   # the image of values.images.SERVICE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import DEFAULT_VALUES
from .build import image_ref
from .cli import load
from .errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The pinned images of the values.")
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE")
    parser.add_argument("what", choices=["ref"])
    parser.add_argument("service")
    args = parser.parse_args(argv)
    try:
        values, _ = load([DEFAULT_VALUES, *args.values])
    except InputError as error:
        print("\n".join(error.problems), file=sys.stderr)
        return 1
    if args.service not in values["images"] or args.service == "registry":
        print(f"images.{args.service}: no such image in the values", file=sys.stderr)
        return 1
    print(image_ref(values, args.service))
    return 0


if __name__ == "__main__":
    sys.exit(main())
