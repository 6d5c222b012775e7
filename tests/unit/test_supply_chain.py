"""What the project installs and runs from elsewhere is pinned to content, not to a name
that can be moved: Python packages by hash, workflow actions by commit."""

from __future__ import annotations

import re

import pytest
import yaml

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("requirements", ["requirements.txt", "instrumentation/requirements-test.txt",
                                          "instrumentation/requirements-mutate.txt"])
def test_every_python_package_is_pinned_with_hashes(root, requirements):
    text = (root / requirements).read_text()
    # `-r other.txt` includes a file this test checks on its own.
    entries = re.split(r"\n(?=\S)", "\n".join(l for l in text.splitlines()
                                                 if not l.startswith(("#", "-r "))).strip())
    assert len(entries) >= 10
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9_.-]+==[0-9][^ ]* \\\n", entry), entry
        assert re.findall(r"--hash=sha256:[0-9a-f]{64}", entry), entry
    # pip refuses any file whose hash is not listed (and any unpinned dependency).
    assert f"--require-hashes -r {requirements}" in (root / "Makefile").read_text()


def test_workflow_actions_are_pinned_to_commits(root):
    for path in sorted((root / ".github/workflows").glob("*.yml")):
        workflow = yaml.safe_load(path.read_text())
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), (path.name, step["uses"])
