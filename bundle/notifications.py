"""Alertmanager receivers: values `alertmanager.receivers` (a map by name) as the list
Alertmanager reads, Slack and email entries given the bundle's notification texts
(templates/alertmanager/templates/notifications.tmpl) unless they set their own."""

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
