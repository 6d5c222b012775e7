"""Is the configuration a service runs the one render.py renders from the values?

Prometheus (/api/v1/status/config) and Alertmanager (/api/v2/status) report their loaded
configuration re-serialized: every default written out, durations in their own form
(15d as 2w1d), rule_files, file_sd files and templates resolved against the config
file's directory, matchers quoted. So the comparison is by content: every setting of the rendered file
must be loaded with the same meaning, every list (jobs, targets, routes, receivers)
must have the same items in the same order, label sets must match exactly, and a
section the bundle writes (remote_write, routes, ...) must not be loaded when it is not
rendered. Defaults the service adds are not differences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


def seconds(text: str) -> float:
    """A Prometheus duration (1h30m, 15s, 2w1d) in seconds."""
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def matcher(text: str) -> tuple[str, str, str] | None:
    """severity=critical, severity = "critical" -> ('severity', '=', 'critical')."""
    found = MATCHER.match(text)
    if not found:
        return None
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r'\\(.)', r'\1', value[1:-1])
    return name, op, value


@dataclass(frozen=True)
class Rules:
    """How one service prints its configuration back."""

    exact_maps: frozenset[str]      # keys whose maps must match key for key (label sets)
    owned: frozenset[str]           # top-level sections only the bundle writes
    paths: frozenset[str]           # keys of lists of paths resolved against the config dir
    matchers: frozenset[str]        # keys of lists of matchers


PROMETHEUS = Rules(
    exact_maps=frozenset({"labels", "external_labels"}),
    owned=frozenset({"rule_files", "alerting", "remote_write", "remote_read", "scrape_configs",
                     "scrape_config_files"}),
    # rule_files, and the files of file_sd_configs (the pull hosts' and probes' targets).
    paths=frozenset({"rule_files", "files"}),
    matchers=frozenset(),
)
ALERTMANAGER = Rules(
    exact_maps=frozenset(),
    owned=frozenset({"route", "receivers", "inhibit_rules", "templates", "time_intervals", "mute_time_intervals"}),
    paths=frozenset({"templates"}),
    matchers=frozenset({"matchers", "source_matchers", "target_matchers"}),
)


def differences(rendered: Any, loaded: Any, rules: Rules) -> list[str]:
    """What of the rendered configuration is not what is loaded, one line each."""
    out = list(_diff(rendered, loaded, "", "", rules))
    if isinstance(rendered, dict) and isinstance(loaded, dict):
        out += [f"{key}: loaded, but the rendered configuration has no {key}"
                for key in loaded if key in rules.owned and key not in rendered]
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _label(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in ("job_name", "name", "receiver", "url"):
            if isinstance(item.get(key), str):
                return f"[{key}={item[key]}]"
    return f"[{index}]"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _diff(want: Any, got: Any, where: str, key: str, rules: Rules) -> Iterator[str]:
    if isinstance(want, dict):
        if not isinstance(got, dict):
            yield f"{where}: rendered a mapping, loaded {_short(got)}"
            return
        for k, value in want.items():
            if k not in got:
                yield f"{_join(where, k)}: rendered {_short(value)}, not loaded"
            else:
                yield from _diff(value, got[k], _join(where, k), k, rules)
        if key in rules.exact_maps:
            for k in got:
                if k not in want:
                    yield f"{_join(where, k)}: loaded {_short(got[k])}, not rendered"
    elif isinstance(want, list):
        if not isinstance(got, list):
            yield f"{where}: rendered a list, loaded {_short(got)}"
            return
        if len(want) != len(got):
            yield (f"{where}: {len(want)} rendered {[_label(w, i) for i, w in enumerate(want)]}, "
                   f"{len(got)} loaded {[_label(g, i) for i, g in enumerate(got)]}")
            return
        for i, (w, g) in enumerate(zip(want, got)):
            yield from _diff(w, g, where + _label(w, i), key, rules)
    elif not same(want, got, key, rules):
        yield f"{where}: rendered {_short(want)}, loaded {_short(got)}"


def same(want: Any, got: Any, key: str, rules: Rules) -> bool:
    if want == got:
        return True
    if isinstance(want, str) and isinstance(got, str):
        if DURATION.match(want) and DURATION.match(got):
            return seconds(want) == seconds(got)
        if key in rules.paths and not want.startswith("/"):
            return got.endswith("/" + want.removeprefix("./"))
        if key in rules.matchers:
            return matcher(want) is not None and matcher(want) == matcher(got)
    return False
