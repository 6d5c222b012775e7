"""The services' own validators, run on a rendered tree: promtool and amtool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import ROOT
from .build import image_ref
from .errors import InputError


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
    return bool(docker) and subprocess.run(
        [docker, "info"], capture_output=True, timeout=20).returncode == 0


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


def validate_tree(tree: Path, values: dict, required: bool) -> None:
    """Run each validator on the rendered tree. A validator that cannot run at all is a
    warning, or a problem when `required`; a validator that refuses a file is a problem."""
    problems = []

    def unavailable(message: str) -> None:
        if required:
            problems.append(message)
        else:
            print(message, file=sys.stderr)

    for tool, service, args in VALIDATORS:
        command = validator_command(tool, service, tree, values)
        if command is None:
            unavailable(f"render.py: neither {tool} (make tools) nor Docker is available; "
                        f"{args[-1]} was not validated")
            continue
        result = subprocess.run([*command, *args], cwd=tree, capture_output=True, text=True)
        if command[0] == "docker" and result.returncode == 125:
            # docker itself failed (e.g. the image cannot be pulled): no verdict on the file.
            reason = next((line for line in result.stderr.splitlines() if "Error" in line), "docker failed")
            unavailable(f"render.py: cannot run {tool} from {command[-1]} ({reason}); "
                        f"{args[-1]} was not validated (make tools)")
            continue
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            detail = " | ".join(line.strip() for line in output if line.strip() and "SUCCESS" not in line)
            problems.append(f"config/{args[-1]}: {tool} {' '.join(args[:-1])} failed: {detail}")
    if problems:
        raise InputError(problems)
