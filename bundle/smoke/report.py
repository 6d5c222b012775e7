"""The smoke report: one line per check for people, JUnit XML and JSON for CI systems.

JUnit: one <testsuite name="smoke"> with one <testcase> per check (classname
smoke.<service>, name the check id); a failed check has a <failure>, a skipped one a
<skipped>; the message is in <system-out>. The form GitLab, Jenkins and GitHub summary
actions read (https://github.com/testmoapp/junitxml).
JSON: {"passed", "exit_code", "duration_seconds", "mode", "endpoints", "summary",
"checks": [{"id", "title", "status" (pass|fail|skip), "message", "details", "seconds"}]}.
"""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

# The terminal line keeps to this many characters of a message; the rest is in the
# details of --json and --junit.
LINE_MESSAGE = 400


@dataclass
class Result:
    id: str
    title: str
    status: str                      # pass, fail or skip
    message: str
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Report:
    mode: str
    endpoints: dict[str, str | None]
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def passed(self) -> bool:
        return self.count("fail") == 0


def line(result: Result) -> str:
    message = result.message
    if len(message) > LINE_MESSAGE:
        message = message[: LINE_MESSAGE - 25].rstrip() + " ... (more in --json)"
    return f"{result.status.upper():4}  {result.id:<28} {message}  ({result.seconds:.2f}s)"


def summary(report: Report) -> str:
    verdict = "all checks passed" if report.passed else "FAILED"
    return (f"smoke: {verdict}: {report.count('pass')} passed, {report.count('fail')} failed, "
            f"{report.count('skip')} skipped in {report.seconds:.1f}s ({report.mode} stack)")


def write_lines(report: Report, out: TextIO) -> None:
    for result in report.results:
        print(line(result), file=out)
    print(summary(report), file=out)


def junit(report: Report) -> bytes:
    attrs = {"tests": str(len(report.results)), "failures": str(report.count("fail")), "errors": "0",
             "skipped": str(report.count("skip")), "time": f"{report.seconds:.3f}"}
    suites = ET.Element("testsuites", name="make smoke", **attrs)
    suite = ET.SubElement(suites, "testsuite", name="smoke", timestamp=report.started.isoformat(timespec="seconds"),
                          hostname=socket.gethostname(), **attrs)
    for result in report.results:
        case = ET.SubElement(suite, "testcase", classname=f"smoke.{result.id.split('.')[0]}", name=result.id,
                             time=f"{result.seconds:.3f}")
        text = "\n".join([result.title, result.message, *result.details])
        if result.status == "fail":
            ET.SubElement(case, "failure", message=result.message, type="SmokeCheckFailed").text = text
        elif result.status == "skip":
            ET.SubElement(case, "skipped", message=result.message)
        ET.SubElement(case, "system-out").text = text
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def to_json(report: Report, exit_code: int) -> str:
    return json.dumps({
        "passed": report.passed,
        "exit_code": exit_code,
        "started": report.started.isoformat(timespec="seconds"),
        "duration_seconds": round(report.seconds, 3),
        "mode": report.mode,
        "endpoints": report.endpoints,
        "summary": {"passed": report.count("pass"), "failed": report.count("fail"), "skipped": report.count("skip")},
        "checks": [asdict(r) | {"seconds": round(r.seconds, 3)} for r in report.results],
    }, indent=2) + "\n"


def write_junit(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(junit(report))
