"""The Grafana dashboards, built in Python (builder.py) from one module per dashboard.

Each module defines FOLDER (the Grafana folder), LAYERS (layers it needs besides
dashboards) and dashboard(values) -> builder.Dashboard, and may define wanted(values)
when more than its layers decide whether it exists. They are written to
config/grafana/dashboards/<FOLDER>/<uid>.json.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from types import ModuleType

from .. import layers
from .builder import build

MODULES = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "builder")


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in MODULES]


def files(values: dict) -> dict[str, str]:
    """grafana/dashboards/<folder>/<uid>.json -> its text, for the dashboards whose
    layers are on (the caller checks the dashboards layer)."""
    out = {}
    for module in modules():
        if not all(layers.is_on(values, layer) for layer in module.LAYERS):
            continue
        if hasattr(module, "wanted") and not module.wanted(values):
            continue
        board = module.dashboard(values)
        model = build(board, values, f"bundle/dashboards/{module.__name__.rsplit('.', 1)[1]}.py")
        out[f"grafana/dashboards/{board.folder}/{board.uid}.json"] = json.dumps(model, indent=2, ensure_ascii=False) + "\n"
    return out
