"""The bundle's engine: values.yaml (+ overlays) -> config/, and the facts it is built from.

Data files next to this package state each fact once: alerts.yaml (the alert catalogue),
layers.yaml (layers, their templates, Compose files, scrape jobs and secret wiring),
values.schema.yaml (the schema source of values.schema.json); dashboards/ builds the
Grafana dashboards. render.py at the top of the repository is the command line.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent
TEMPLATES = ROOT / "templates"
DEFAULT_VALUES = ROOT / "values.yaml"
