"""make mutate-config's catalogue stays applicable: a mutant whose `find` text no longer
occurs exactly once (the file it mutates changed) would stop the run, half an hour in,
only when somebody runs it. CI runs this instead."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mutate  # noqa: E402  tests/mutate.py


def test_every_mutant_applies_to_exactly_one_place():
    mutants = yaml.safe_load(mutate.CATALOGUE.read_text(encoding="utf-8"))
    assert len(mutants) >= 40
    assert len({m["id"] for m in mutants}) == len(mutants)
    assert mutate.stale(mutants) == []


def test_a_stale_mutant_is_named(tmp_path, monkeypatch):
    (tmp_path / "f.yaml").write_text("a: 1\na: 1\n")
    monkeypatch.setattr(mutate, "ROOT", tmp_path)
    assert mutate.stale([{"id": "twice", "file": "f.yaml", "find": "a: 1"},
                         {"id": "once", "file": "f.yaml", "find": "a: 1\na: 1"},
                         {"id": "never", "file": "f.yaml", "find": "b"}]) == [
        "tests/mutations.yaml: twice: `find` occurs 2 times in f.yaml; expected exactly once (the catalogue is stale)",
        "tests/mutations.yaml: never: `find` occurs 0 times in f.yaml; expected exactly once (the catalogue is stale)",
    ]
