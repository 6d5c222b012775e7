"""versions.yaml, for the scripts and tests:

    python -m bundle.versions standins     # dir|image|version|binary, one stand-in a line
    python -m bundle.versions validators   # tool|debian package|version, one a line
"""

from __future__ import annotations

import sys
from functools import cache

import yaml

from . import ROOT

STANDIN_REPOSITORY = "obsbundle-standin/{name}"


@cache
def load() -> dict:
    return yaml.safe_load((ROOT / "versions.yaml").read_text(encoding="utf-8"))


def standin_image(name: str) -> tuple[str, str]:
    """(repository, tag) of the stand-in for standins/<name>."""
    return STANDIN_REPOSITORY.format(name=name), str(load()["standins"][name]["version"])


def validator_version(tool: str) -> str:
    return str(load()["validators"][tool]["version"])


def main(argv: list[str]) -> int:
    what = argv[0] if argv else ""
    if what == "standins":
        for name, spec in load()["standins"].items():
            repository, tag = standin_image(name)
            print(f"{name}|{repository}:{tag}|{tag}|{spec['binary']}")
    elif what == "validators":
        for tool, spec in load()["validators"].items():
            print(f"{tool}|{spec['package']}|{spec['version']}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
