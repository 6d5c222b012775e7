"""make mutate-python's verdict: the figures of mutmut's last run on the instrumentation
(instrumentation/mutants/mutmut-cicd-stats.json, written by `mutmut export-cicd-stats`),
the surviving mutants by name, and exit 1 when the score falls below the floor.

The floor is the score measured when the suite last improved (README "Tests"): a change
that lets more mutants live fails here and is either tested or written down. Raise it
when the score rises.

  python tests/mutmut_report.py      (after `mutmut run` in instrumentation/)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

INSTRUMENTATION = Path(__file__).resolve().parent.parent / "instrumentation"
STATS = INSTRUMENTATION / "mutants" / "mutmut-cicd-stats.json"
FLOOR = 0.70


def survivors() -> list[str]:
    """mutmut's own list: one `name: survived` line per surviving mutant."""
    out = subprocess.run([str(INSTRUMENTATION / ".venv" / "bin" / "mutmut"), "results"], cwd=INSTRUMENTATION,
                         capture_output=True, text=True, check=True).stdout
    return [line.split(":")[0].strip() for line in out.splitlines() if line.strip().endswith(": survived")]


def main() -> int:
    if not STATS.exists():
        print(f"{STATS}: missing; run `mutmut run` and `mutmut export-cicd-stats` in instrumentation/ first",
              file=sys.stderr)
        return 1
    stats = json.loads(STATS.read_text(encoding="utf-8"))
    # Mutants no test runs (a function only the integration tests call) are not scored.
    tested = stats["killed"] + stats["survived"] + stats["timeout"] + stats["suspicious"]
    score = stats["killed"] / tested if tested else 0.0
    names = survivors()
    for name in names:
        print(f"  survivor {name}  (cd instrumentation && .venv/bin/mutmut show '{name}')")
    print(f"\nmutmut: mutants: {stats['total']}, killed: {stats['killed']}, survived: {stats['survived']}, "
          f"timeout: {stats['timeout']}, not run by any unit test: {stats['no_tests']}, "
          f"score: {score:.0%} (floor {FLOOR:.0%})")
    if score < FLOOR:
        print(f"mutmut: the score {score:.1%} is below the floor {FLOOR:.0%}: test the survivors above "
              "or explain them next to the code", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
