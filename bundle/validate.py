"""The services' own validators, run on a rendered tree: promtool and amtool (the config,
and every notification text rendered once with a sample alert), and `docker compose
config` on the Compose files with the rendered settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import ROOT
from .build import image_ref
from .errors import InputError
from .notifications import texts
from .secrets import read_env
from .values import Source, dotted
from .schema import by_position

DEFAULT_TEMPLATES = ROOT / ".tools" / "share" / "alertmanager"


def find_tool(name: str) -> str | None:
    """A local binary: $PROMTOOL / $AMTOOL, then .tools/bin (make tools), then PATH."""
    override = os.environ.get(name.upper())
    if override:
        return override
    local = ROOT / ".tools" / "bin" / name
    if local.exists():
        return str(local)
    return shutil.which(name)


def docker_available() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# (tool, image of values.images that ships it at /bin/<tool>, arguments)
VALIDATORS = [
    ("promtool", "prometheus", ["check", "config", "prometheus/prometheus.yml"]),
    ("amtool", "alertmanager", ["check-config", "alertmanager/alertmanager.yml"]),
]


def validator_command(tool: str, service: str, tree: Path, values: dict) -> list[str] | None:
    """The local tool if there is one, else the same tool inside the pinned image."""
    exe = find_tool(tool)
    if exe:
        return [exe]
    if docker_available():
        return ["docker", "run", "--rm", "--network", "none", "--user", f"{os.getuid()}",
                "-v", f"{tree}:/config:ro", "-w", "/config", "--entrypoint", f"/bin/{tool}",
                image_ref(values, service)]
    return None


class Job:
    """A validator process, started at once so that all of them run side by side."""

    def __init__(self, command: list[str], **kwargs):
        self.command = command
        self.error = ""
        try:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, text=True, **kwargs)
        except OSError as error:
            self.proc = None
            self.error = f"cannot run {command[0]} ({error.strerror})"

    def result(self) -> subprocess.CompletedProcess | str:
        """The finished process, or why it could not run."""
        if self.proc is None:
            return self.error
        try:
            out, err = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return f"{self.command[0]} did not finish within 120s"
        return subprocess.CompletedProcess(self.command, self.proc.returncode, out, err)


def summary(result: subprocess.CompletedProcess) -> str:
    output = (result.stdout + result.stderr).strip().splitlines()
    return " | ".join(line.strip() for line in output if line.strip() and "SUCCESS" not in line)


def validate_tree(tree: Path, values: dict, required: bool, source: Source | None = None,
                  compose: bool | None = None) -> None:
    """Run each validator on the rendered tree, side by side. A validator that cannot run
    at all is a warning, or a problem when `required`; a validator that refuses a file is a
    problem. `docker compose config` runs when `compose` (default: `required`) and a
    Docker client is there."""
    problems = []

    def unavailable(message: str) -> None:
        if required:
            problems.append(message)
        else:
            print(message, file=sys.stderr)

    jobs = []
    for tool, service, args in VALIDATORS:
        command = validator_command(tool, service, tree, values)
        if command is None:
            unavailable(f"render.py: neither {tool} (make tools) nor Docker is available; "
                        f"{args[-1]} was not validated")
            continue
        jobs.append((tool, args, command, Job([*command, *args], cwd=tree)))
    texts_job = NotificationTexts(tree, values, source or Source())
    compose_job = ComposeConfig(tree, values) if (required if compose is None else compose) else None
    for tool, args, command, job in jobs:
        result = job.result()
        if isinstance(result, str):
            unavailable(f"render.py: {result}; {args[-1]} was not validated (make tools, or unset "
                        f"{tool.upper()})")
            continue
        if command[0] == "docker" and result.returncode == 125:
            # docker itself failed (e.g. the image cannot be pulled): no verdict on the file.
            reason = next((line for line in result.stderr.splitlines() if "Error" in line), "docker failed")
            unavailable(f"render.py: cannot run {tool} from {command[-1]} ({reason}); "
                        f"{args[-1]} was not validated (make tools)")
            continue
        if result.returncode != 0:
            problems.append(f"config/{args[-1]}: {tool} {' '.join(args[:-1])} failed: {summary(result)}")
    problems += texts_job.problems(unavailable)
    if compose_job:
        problems += compose_job.problems()
    if problems:
        raise InputError(sorted(problems, key=by_position))


# --------------------------------------------------------------------------- notification texts

# A firing alert as Alertmanager hands it to a notification template (template.Data).
# https://prometheus.io/docs/alerting/latest/notifications/#data
SAMPLE = {
    "receiver": "sample", "status": "firing", "externalURL": "http://127.0.0.1:9093",
    "groupLabels": {"alertname": "SampleAlert"},
    "commonLabels": {"alertname": "SampleAlert", "severity": "critical", "cluster": "sample"},
    "commonAnnotations": {"summary": "a sample alert"},
    "alerts": [{"status": "firing", "labels": {"alertname": "SampleAlert", "severity": "critical",
                                                 "instance": "host:9100", "job": "node", "cluster": "sample"},
                "annotations": {"summary": "a sample alert", "description": "rendered once by render.py",
                                "runbook_url": "docs/runbooks.md#samplealert"},
                "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "0123456789abcdef"}],
}


class NotificationTexts:
    """Every templated field of every receiver rendered once with a sample alert, as
    Alertmanager renders them when it sends: amtool check-config parses only some of
    them, so a broken Slack title would otherwise fail at the first notification. Skipped
    (with a warning) without amtool and Alertmanager's default templates (make tools)."""

    def __init__(self, tree: Path, values: dict, source: Source):
        self.source = source
        self.jobs = []
        self.missing = False
        self.data = None
        fields = texts(values)
        amtool = find_tool("amtool")
        if not fields:
            return
        if amtool is None or not DEFAULT_TEMPLATES.is_dir():
            self.missing = True
            return
        handle, name = tempfile.mkstemp(prefix="render-sample-alert-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(SAMPLE, out)
        self.data = Path(name)
        globs = [str(DEFAULT_TEMPLATES / "*.tmpl"), str(tree / "alertmanager" / "templates" / "*.tmpl")]
        for path, text, kind in fields:
            command = [amtool, "template", "render", f"--template.type={kind}", f"--template.data={self.data}",
                       f"--template.text={text}", *[f"--template.glob={g}" for g in globs]]
            self.jobs.append((path, Job(command)))

    def problems(self, unavailable) -> list[str]:
        if self.missing:
            unavailable("render.py: amtool and Alertmanager's default templates (make tools) are not there; "
                        "the notification texts were not rendered")
        out = []
        try:
            for path, job in self.jobs:
                result = job.result()
                if isinstance(result, str):
                    unavailable(f"render.py: {result}; the notification texts were not rendered")
                    continue
                if result.returncode != 0:
                    detail = summary(result).removeprefix("amtool: error: ")
                    out.append(f"{self.source.where(path)}: {dotted(path)}: Alertmanager cannot render this "
                               f"notification text: {detail}")
        finally:
            if self.data:
                self.data.unlink(missing_ok=True)
        return out


# --------------------------------------------------------------------------- Compose


class ComposeConfig:
    """`docker compose config` on the Compose files of the enabled layers with the
    rendered compose.env (secrets stand in as placeholders), when a Docker client with
    Compose is there: an invalid host port or image reference fails here rather than at
    `make up`. Variables of compose.env set in render.py's environment are dropped, as
    scripts/compose.sh drops them."""

    def __init__(self, tree: Path, values: dict):
        self.job = None
        docker = shutil.which("docker")
        if not docker:
            return
        settings = read_env(tree / "compose.env")
        files = [str(tree / "compose.overlay.yml") if f == "config/compose.overlay.yml" else str(ROOT / f)
                 for f in settings["COMPOSE_FILE"].split(":")]
        env = {key: value for key, value in os.environ.items()
               if key not in settings and not key.startswith("COMPOSE_")}
        env.update({spec["env"]: "placeholder" for spec in values["secrets"].values()})
        env["COMPOSE_FILE"] = os.pathsep.join(files)
        self.job = Job([docker, "compose", "--env-file", str(tree / "compose.env"), "config", "--quiet"],
                       cwd=ROOT, env=env)

    def problems(self) -> list[str]:
        if self.job is None:
            return []
        result = self.job.result()
        if isinstance(result, str):
            print(f"render.py: {result}; the Compose files were not checked", file=sys.stderr)
            return []
        if result.returncode != 0:
            if "is not a docker command" in result.stderr or "unknown command" in result.stderr:
                print("render.py: docker has no compose plugin; the Compose files were not checked",
                      file=sys.stderr)
                return []
            lines = [line for line in result.stderr.strip().splitlines() if "level=warning" not in line]
            return [f"config/compose.env: docker compose config refuses the stack: {' | '.join(lines) or 'failed'}"]
        return []
