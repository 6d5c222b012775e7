"""Alertmanager receivers: values `alertmanager.receivers` (a map by name) as the list
Alertmanager reads, Slack and email entries given the bundle's notification texts
(templates/alertmanager/templates/notifications.tmpl) unless they set their own; and the
routing tree, with the route of `make smoke-notify` when `smoke.notify_receiver` is set."""

from __future__ import annotations

TEXTS = {
    "slack_configs": {
        "title": '{{ template "bundle.title" . }}',
        "fallback": '{{ template "bundle.title" . }}',
        "text": '{{ template "bundle.slack.text" . }}',
    },
    "email_configs": {
        "headers": {"Subject": '{{ template "bundle.email.subject" . }}'},
        "html": '{{ template "bundle.email.html" . }}',
        "text": '{{ template "bundle.email.text" . }}',
    },
}


def receivers(values: dict) -> list[dict]:
    return [{"name": name, **{key: [{**TEXTS[key], **item} for item in value] if key in TEXTS else value
                              for key, value in receiver.items()}}
            for name, receiver in values["alertmanager"]["receivers"].items()]


# Fields of each receiver entry that Alertmanager renders as a template when it sends, and
# the template type (html fields are HTML-escaped as they are rendered).
# https://prometheus.io/docs/alerting/latest/configuration/#email_config
TEMPLATED = {
    "slack_configs": {"channel": "text", "username": "text", "title": "text", "fallback": "text", "text": "text"},
    "email_configs": {"to": "text", "html": "html", "text": "text"},
}


def texts(values: dict) -> list[tuple[tuple, str, str]]:
    """(values path, text, template type) of every notification text of the values that
    Alertmanager renders as a template: the receivers' own fields and the SMTP sender,
    those holding {{ (plain text cannot fail to render), each distinct text once. The
    bundle's own texts (TEXTS, notifications.tmpl) are proven by tests/config."""
    out, seen = [], set()

    def add(path: tuple, text, kind: str) -> None:
        if isinstance(text, str) and "{{" in text and (text, kind) not in seen:
            seen.add((text, kind))
            out.append((path, text, kind))

    am = values["alertmanager"]
    add(("alertmanager", "smtp", "from"), am["smtp"]["from"], "text")
    for name, receiver in am["receivers"].items():
        for key, fields in TEMPLATED.items():
            for i, item in enumerate(receiver.get(key, [])):
                entry = ("alertmanager", "receivers", name, key, i)
                for field, kind in fields.items():
                    if field in item:
                        add(entry + (field,), item[field], kind)
                for header, text in item.get("headers", {}).items():
                    add(entry + ("headers", header), text, "text")
    return out


# The label `make smoke-notify` (bundle/smoke/notify.py) puts on its synthetic alert, with
# a value of its own for each run: only the route below matches it.
SMOKE_LABEL = "smoke_notify"


def route(values: dict) -> dict:
    """alertmanager.route; with smoke.notify_receiver set, a first child route sends alerts
    carrying SMOKE_LABEL to that receiver alone (no `continue`, so no other route sees
    them), each run in its own group: notified at once (group_wait 0s) and its resolution
    within seconds (group_interval 10s) rather than after the top route's minutes."""
    top = values["alertmanager"]["route"]
    receiver = values["smoke"]["notify_receiver"]
    if not receiver:
        return top
    smoke = {"matchers": [f'{SMOKE_LABEL}=~".+"'], "receiver": receiver, "group_by": [SMOKE_LABEL],
             "group_wait": "0s", "group_interval": "10s", "repeat_interval": "1h", "continue": False}
    return {**top, "routes": [smoke, *top.get("routes", [])]}
