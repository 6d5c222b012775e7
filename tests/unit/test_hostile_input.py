"""Hostile and careless input: every class of the promise (issue 11) with an example or
more of each. Bad input gets one line per problem naming file:line and the key, exit 1,
and the output byte-identical; what passes renders exactly what was written."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from inprocess import render, rendered_copy, snapshot

pytestmark = pytest.mark.unit


@pytest.fixture
def work(tmp_path):
    """tmp_path with a render of the defaults in tmp_path/config."""
    return rendered_copy(tmp_path)


def refused(work, text: str, expected: list[str], **kwargs) -> list[str]:
    """Render the overlay `text`; it must be refused with exactly the `expected` lines
    (each a substring of its line, in order) and leave config/ untouched."""
    before = snapshot(work / "config")
    result = render(work, text, **kwargs)
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert len(result.problems) == len(expected), result.stderr
    for line, part in zip(result.problems, expected):
        assert part in line, (part, line)
    assert snapshot(work / "config") == before
    assert not (work / "config" / ".render-staging").exists()
    return result.problems


def accepted(work, text: str):
    result = render(work, text)
    assert result.code == 0, result.stderr
    return work / "config"


# --------------------------------------------------------------------------- tracebacks before

ONE_LINE = {
    "empty string where minLength": ("cluster: ''\n", "overlay-0.yaml:1: cluster: expected a non-empty string"),
    "empty list where minItems": ("prometheus:\n  scrape_configs:\n    x:\n      targets: []\n",
                                  "overlay-0.yaml:4: prometheus.scrape_configs.x.targets: expected at least 1"),
    "cluster in external_labels": ("prometheus:\n  external_labels: {cluster: x}\n",
                                   "overlay-0.yaml:2: prometheus.external_labels.cluster: set from the "
                                   "top-level `cluster` key"),
    "custom tag": ("cluster: !vault x\n", "overlay-0.yaml:1: cluster: the tag !vault is not supported"),
    "binary": ("cluster: !!binary aGVsbG8=\n", "overlay-0.yaml:1: cluster: the tag !!binary is not supported"),
    "set": ("cluster: !!set {a, b}\n", "overlay-0.yaml:1: cluster: the tag !!set is not supported"),
    "python tag": ("cluster: !!python/object:os.system x\n", "the tag !!python/object:os.system is not supported"),
    "a date where a number is expected": ("elasticsearch:\n  retention_days: 2024-01-15\n",
                                          "overlay-0.yaml:2: elasticsearch.retention_days: expected a whole "
                                          "number of days"),
    "recursive alias": ("cluster: &a [*a]\n", "overlay-0.yaml:1: cluster[0][0][0][0][0]...: nested more than"),
    "deep nesting": ("cluster: " + "[" * 3000 + "]" * 3000 + "\n", "overlay-0.yaml: nested more than 40"),
    "deep block nesting": ("cluster:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(50)) + "  " * 51
                           + "x: 1\n", "...: nested more than 40 levels deep"),
    "non-string key": ("prometheus:\n  1: x\n", "overlay-0.yaml:2: prometheus: key '1' must be a string"),
    "a list as key": ("? [a]\n: x\n", "overlay-0.yaml:1: (top level): key 'SequenceNode' must be a string"),
    "merge key to a scalar": ("cluster:\n  <<: x\n", "overlay-0.yaml:2: cluster: a merge key (<<) takes a map"),
    "not UTF-8": ("", "overlay-0.yaml: is not UTF-8 text (byte 12)"),
}


@pytest.mark.parametrize("case", sorted(ONE_LINE))
def test_input_that_used_to_raise_is_one_line(work, case):
    text, expected = ONE_LINE[case]
    if case == "not UTF-8":
        path = work / "overlay-0.yaml"
        path.write_bytes("cluster: caf\xe9\n".encode("latin-1"))
        refused(work, path, [expected])
    else:
        refused(work, text, [expected])


def test_alias_bomb_is_refused_before_it_expands(work):
    """The "billion laughs": nine levels of nine aliases, 9^9 values once expanded."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = "cluster:\n" + "".join(f"  {line}\n" for line in lines)
    refused(work, text, ["overlay-0.yaml: expands to more than 100000 values (through YAML aliases)"])


def test_a_values_file_over_the_size_limit_is_refused(work):
    path = work / "big.yaml"
    path.write_text("cluster: x\n" + "# padding\n" * 110_000)
    refused(work, path, [f"{path.name}: more than 1048576 bytes; a values file may hold at most 1048576 bytes"])
    # A file that never ends is read no further than the limit.
    refused(work, Path("/dev/zero"), ["/dev/zero: more than 1048576 bytes"])


def test_a_missing_validator_named_by_the_environment_is_one_line(work, monkeypatch):
    monkeypatch.setenv("PROMTOOL", str(work / "no-such-promtool"))
    result = render(work, extra=["--require-validators"])
    assert result.code == 1
    assert result.problems == [f"render.py: cannot run {work}/no-such-promtool (No such file or directory); "
                               f"prometheus/prometheus.yml was not validated (make tools, or unset PROMTOOL)"]


def test_an_env_file_that_is_a_directory_or_not_utf8_is_one_line(work):
    env = work / ".env"
    env.unlink()
    env.mkdir()
    refused(work, "{}\n", [".env: is a directory; expected the secrets file"])
    env.rmdir()
    env.write_bytes(b"SMTP_PASSWORD=caf\xe9\n")
    refused(work, "{}\n", [".env: is not UTF-8 text (byte 17)"])
    env.unlink()
    env.symlink_to("/dev/zero")
    refused(work, "{}\n", [".env: more than 1048576 bytes"])


# --------------------------------------------------------------------------- what services accept

SERVICE = {
    "float port": ("ports:\n  prometheus: 9090.0\n", ["overlay-0.yaml:2: ports.prometheus: expected a port number"]),
    "leading zero ip": ("bind_address: 127.0.0.01\n", ["overlay-0.yaml:1: bind_address: expected an IPv4 address"]),
    "hostname as ip": ("bind_address: localhost\n", ["overlay-0.yaml:1: bind_address: expected an IPv4 address"]),
    "jaeger days": ("jaeger:\n  retention: 7d\n", ["overlay-0.yaml:2: jaeger.retention: expected a Go duration"]),
    "jaeger zero": ("jaeger:\n  retention: 0h\n", ["overlay-0.yaml:2: jaeger.retention: must be more than 0"]),
    "retention out of order": ("prometheus:\n  retention:\n    time: 30s1m\n",
                               ["overlay-0.yaml:3: prometheus.retention.time: expected a duration like"]),
    "retention fraction": ("prometheus:\n  retention:\n    time: 1.5d\n",
                           ["overlay-0.yaml:3: prometheus.retention.time: expected a duration"]),
    "retention both zero": ("prometheus:\n  retention:\n    time: '0'\n    size: 0GB\n",
                            ["overlay-0.yaml:2: prometheus.retention: time and size are both 0"]),
    "float days": ("elasticsearch:\n  retention_days: 30.0\n",
                   ["overlay-0.yaml:2: elasticsearch.retention_days: expected a whole number of days, 1-3650 "
                    "(got 30.0)"]),
    "nan threshold": ("alerts:\n  HighCPUUsage:\n    threshold: .nan\n",
                      ["overlay-0.yaml:3: alerts.HighCPUUsage.threshold: expected a percentage 0-100 (got nan)"]),
    "inf threshold": ("alerts:\n  HighResponseTime:\n    threshold: .inf\n",
                      ["overlay-0.yaml:3: alerts.HighResponseTime.threshold: expected a number of seconds > 0 "
                       "(got inf)"]),
    "boolean as port": ("ports:\n  grafana: true\n", ["overlay-0.yaml:2: ports.grafana: expected a port number"]),
    "two services on one host port": ("ports:\n  grafana: 9090\n",
                                      ["overlay-0.yaml:2: ports.grafana: 9090 is also the host port of "
                                       "ports.prometheus"]),
    "logstash input on a service's port": ("ports:\n  kibana: 5044\n",
                                           ["ports.kibana: 5044 is also the host port of logstash.beats.port"]),
    "logstash inputs on one port": ("logstash:\n  beats:\n    port: 5000\n",
                                    ["overlay-0.yaml:3: logstash.beats.port: 5000 is also logstash.tcp_json.port"]),
    "logstash input on its API port": ("logstash:\n  tcp_json:\n    port: 9600\n",
                                       ["overlay-0.yaml:3: logstash.tcp_json.port: 9600 is Logstash's own API port"]),
    "datasource uid collision": ("grafana:\n  datasources:\n    jaeger:\n      uid: prometheus\n",
                                 ["overlay-0.yaml:4: grafana.datasources.jaeger.uid: 'prometheus' is also the uid "
                                  "of grafana.datasources.prometheus"]),
    "datasource name collision": ("grafana:\n  datasources:\n    alertmanager:\n      name: PROMETHEUS\n",
                                  ["overlay-0.yaml:4: grafana.datasources.alertmanager.name: 'PROMETHEUS' is also "
                                   "the name of grafana.datasources.prometheus"]),
    "zero scrape interval": ("prometheus:\n  scrape_interval: 0s\n",
                             ["overlay-0.yaml:2: prometheus.scrape_interval: must be more than 0"]),
    "zero job scrape timeout": ("prometheus:\n  scrape_configs:\n    x:\n      targets: ['x:1']\n"
                                "      scrape_timeout: 0ms\n",
                                ["overlay-0.yaml:5: prometheus.scrape_configs.x.scrape_timeout: must be more than 0"]),
    "zero evaluation interval": ("prometheus:\n  evaluation_interval: '0'\n",
                                 ["prometheus.evaluation_interval: must be more than 0"]),
    "sender without a domain": ("alertmanager:\n  smtp:\n    from: nobody\n",
                                ["overlay-0.yaml:3: alertmanager.smtp.from: expected one email address"]),
    "two senders": ("alertmanager:\n  smtp:\n    from: a@example.com, b@example.com\n",
                    ["overlay-0.yaml:3: alertmanager.smtp.from: expected one email address"]),
    "a bad recipient in a list": ("alertmanager:\n  receivers:\n    ops-email:\n      email_configs:\n"
                                  "        - to: 'ops@example.com, oncall'\n",
                                  ["overlay-0.yaml:5: alertmanager.receivers.ops-email.email_configs[0].to: "
                                   "expected email addresses"]),
    "tag latest by digest only": ("images:\n  grafana:\n    repository: grafana/grafana\n    tag: latest\n",
                                  ["overlay-0.yaml:4: images.grafana.tag: expected an exact version tag"]),
}


@pytest.mark.parametrize("case", sorted(SERVICE))
def test_values_a_service_would_refuse_or_misread_are_refused(work, case):
    text, expected = SERVICE[case]
    refused(work, text, expected)


@pytest.mark.parametrize("text", [
    "alertmanager:\n  smtp:\n    from: Alertmanager <alertmanager@example.com>\n",
    "alertmanager:\n  smtp:\n    from: '\"Ops, Team\" <ops@mail.example.com>'\n",
    "alertmanager:\n  receivers:\n    ops-email:\n      email_configs:\n        - to: 'a@example.com, B <b@example.com>'\n",
    "alertmanager:\n  receivers:\n    ops-email:\n      email_configs:\n        - to: '{{ .GroupLabels.team }}@example.com'\n",
    "prometheus:\n  retention:\n    time: 1y2w3d4h5m6s7ms\n",
    "jaeger:\n  retention: 1.5h30m\n",
])
def test_values_services_accept_are_accepted(work, text):
    accepted(work, text)


def test_a_retention_limit_of_0_is_accepted_with_a_warning_saying_what_it_means(work):
    result = render(work, "prometheus:\n  retention:\n    time: '0'\n    size: 10GB\n")
    assert result.code == 0, result.stderr
    assert any(line.startswith("render.py: warning: ") and line.endswith(
        "overlay-0.yaml:3: prometheus.retention.time: 0 means no time limit to Prometheus: only retention.size "
        "bounds the data") for line in result.stderr.splitlines()), result.stderr


def test_an_image_pinned_by_digest_is_accepted_and_rendered_exactly(work):
    digest = "sha256:" + "0123456789abcdef" * 4
    config = accepted(work, f"images:\n  grafana:\n    repository: grafana/grafana\n    tag: 13.2.0@{digest}\n")
    assert f"GRAFANA_IMAGE='grafana/grafana:13.2.0@{digest}'" in (config / "compose.env").read_text()


def test_a_date_where_text_is_expected_is_that_text(work):
    config = accepted(work, "images:\n  grafana:\n    repository: grafana/grafana\n    tag: 2024-01-15\n")
    assert "GRAFANA_IMAGE='grafana/grafana:2024-01-15'" in (config / "compose.env").read_text()


# --------------------------------------------------------------------------- where messages point


def test_a_key_whose_value_is_a_block_is_reported_on_its_own_line(work):
    refused(work, "# comment\ncluster:\n  a: b\n", ["overlay-0.yaml:2: cluster: expected a value of type string"])
    refused(work, "prometheus:\n  external_labels:\n    - a\n    - b\n",
            ["overlay-0.yaml:2: prometheus.external_labels: expected a value of type object"])


def test_a_merge_key_followed_by_an_override_is_standard_yaml(work):
    text = ("prometheus:\n  scrape_configs:\n    a: &job\n      targets: ['a:1']\n      labels: {team: x}\n"
            "    b:\n      <<: *job\n      targets: ['b:1']\n")
    config = accepted(work, text)
    jobs = {j["job_name"]: j for j in yaml.safe_load((config / "prometheus" / "prometheus.yml").read_text())[
        "scrape_configs"]}
    # (host: every job of this Prometheus carries values `host`, README "Several hosts")
    assert jobs["b"]["static_configs"] == [{"targets": ["b:1"], "labels": {"host": "central", "team": "x"}}]
    refused(work, "cluster: a\nenvironment: b\ncluster: c\n", ["overlay-0.yaml:3: cluster: duplicate key"])


def test_a_quote_in_the_stub_status_url_is_rendered_exactly(work):
    url = "http://nginx:8080/it's\\stub$x"
    config = accepted(work, yaml.safe_dump({"exporters": {"nginx": {"stub_status_url": url}}}))
    from bundle.secrets import read_env

    assert read_env(config / "compose.env")["NGINX_EXPORTER_STUB_STATUS_URL"] == url


def test_problems_of_two_files_each_name_their_own_file_and_line(work):
    (work / "a.yaml").write_text("cluster: ''\n")
    (work / "b.yaml").write_text("\n\nenvironment: ''\n")
    result = render(work, work / "a.yaml", work / "b.yaml")
    assert result.code == 1
    assert [line.split(": ")[0].rsplit("/", 1)[-1] for line in result.problems] == ["a.yaml:1", "b.yaml:3"]


# --------------------------------------------------------------------------- $ and friends

# Every form of expansion the outputs' programs know, and the escapes.
NASTY = "a$b ${HOME} $HOME $__file{/run/secrets/elastic_password} $__env{HOME} $$ $1 ${X:-y} ${ end$"


def go_os_expand(text: str, env: dict) -> str:
    """Go's os.Expand as Prometheus 3 applies it to external label values: $name, ${name},
    and $$ (the name "$") read as "$". https://pkg.go.dev/os#Expand"""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
            continue
        rest = text[i + 1:]
        if rest[0] == "{":
            end = rest.find("}")
            if end < 0:  # bad syntax: os.Expand eats "${"
                i += 2
                continue
            name, i = rest[1:end], i + end + 2
        elif rest[0] in "*#$@!?-0123456789":
            name, i = rest[0], i + 2
        else:
            m = re.match(r"[A-Za-z0-9_]*", rest)
            if not m.group(0):
                out.append("$")
                i += 1
                continue
            name, i = m.group(0), i + 1 + len(m.group(0))
        out.append("$" if name == "$" else env.get(name, ""))
    return "".join(out)


def grafana_expand(text: str, env: dict) -> str:
    """Grafana's provisioning: split on $$, expand each part ($__env{}, $__file{}, ${},
    $name), join with $. pkg/services/provisioning/values/values.go"""
    def part(p: str) -> str:
        p = re.sub(r"\$__(env|file)\{([^}]*)\}", lambda m: "<SECRET>" if m.group(1) == "file"
                   else env.get(m.group(2), ""), p)
        p = re.sub(r"\$\{([^}]*)\}", lambda m: env.get(m.group(1), ""), p)
        return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda m: env.get(m.group(1), ""), p)

    return "$".join(part(p) for p in text.split("$$"))


def test_every_dollar_reaches_prometheus_and_grafana_as_written(work, values):
    env = {"HOME": "/root", "X": "x"}
    slack, secret = next((name, r["slack_configs"][0]["api_url_secret"])
                         for name, r in values["alertmanager"]["receivers"].items() if r.get("slack_configs"))
    overlay = {"environment": "prod $HOME", "prometheus": {"external_labels": {"region": NASTY}, "scrape_configs": {
                   "x": {"targets": ["x:1"], "labels": {"team": NASTY}}}},
               "alertmanager": {"receivers": {slack: {"slack_configs": [
                   {"api_url_secret": secret, "title": NASTY, "channel": NASTY}]}}},
               "grafana": {"datasources": {"prometheus": {"name": NASTY},
                                           "elasticsearch": {"username": "reader$HOME", "name": "$__env{HOME}"}}}}
    config = accepted(work, yaml.safe_dump(overlay))
    labels = yaml.safe_load((config / "prometheus" / "prometheus.yml").read_text())["global"]["external_labels"]
    assert go_os_expand(labels["region"], env) == NASTY
    assert go_os_expand(labels["environment"], env) == "prod $HOME"
    # Outputs whose programs expand nothing get the value as it is.
    jobs = yaml.safe_load((config / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    assert next(j for j in jobs if j["job_name"] == "x")["static_configs"][0]["labels"]["team"] == NASTY
    receivers = yaml.safe_load((config / "alertmanager" / "alertmanager.yml").read_text())["receivers"]
    entry = next(r for r in receivers if r["name"] == slack)["slack_configs"][0]
    assert entry["title"] == entry["channel"] == NASTY
    sources = yaml.safe_load((config / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    by_type = {d["type"]: d for d in sources["datasources"]}
    assert grafana_expand(by_type["prometheus"]["name"], env) == NASTY
    assert grafana_expand(by_type["elasticsearch"]["name"], env) == "$__env{HOME}"
    assert grafana_expand(by_type["elasticsearch"]["basicAuthUser"], env) == "reader$HOME"
    # The bundle's own expansions still expand: the password comes from its file.
    assert grafana_expand(by_type["elasticsearch"]["secureJsonData"]["basicAuthPassword"], env) == "<SECRET>"


LOGSTASH = re.compile(r"\$\{([a-zA-Z_.][a-zA-Z0-9_.]*)(:[^}]*)?\}")


def test_values_logstash_would_expand_are_refused_and_the_rest_reach_it_as_written(work):
    refused(work, "cluster: '${LOGSTASH_WRITER_PASSWORD}'\nenvironment: 'x ${a.b:default} y'\n", [
        "overlay-0.yaml:1: cluster: holds ${LOGSTASH_WRITER_PASSWORD}, which Logstash would replace",
        "overlay-0.yaml:2: environment: holds ${a.b:default}, which Logstash would replace"])
    refused(work, "logstash:\n  elasticsearch:\n    username: '${HOME}'\n",
            ["logstash.elasticsearch.username: holds ${HOME}, which Logstash would replace"])
    literal = "$HOME $__file{/x} ${ x} ${1abc} $$ end$"
    assert not LOGSTASH.search(literal)
    config = accepted(work, yaml.safe_dump({"cluster": literal}))
    conf = (config / "logstash" / "pipeline" / "logstash.conf").read_text()
    written = re.search(r'"\[labels\]\[cluster\]" => "(.*)"', conf).group(1)
    assert written.replace('\\"', '"').replace("\\\\", "\\") == literal


def test_values_apm_server_would_expand_are_refused(work):
    refused(work, "apm:\n  elasticsearch:\n    username: 'a${HOME}'\n",
            ["overlay-0.yaml:3: apm.elasticsearch.username: holds ${, which APM Server would expand"])


# --------------------------------------------------------------------------- .env


def env_with(work, line: str, var: str = "SMTP_PASSWORD") -> None:
    env = work / ".env"
    text = re.sub(rf"(?m)^{var}=.*$", line, env.read_text())
    env.write_text(text)


@pytest.mark.parametrize("line, fix", [
    ("BIND_ADDRESS=0.0.0.0", "BIND_ADDRESS: a setting, not a secret"),
    ("PROMETHEUS_IMAGE=prom/prometheus:latest", "PROMETHEUS_IMAGE: a setting, not a secret"),
    ("COMPOSE_PROFILES=post-up", "COMPOSE_PROFILES: a setting, not a secret"),
])
def test_env_lines_that_would_override_reviewed_settings_are_refused(work, line, fix):
    (work / ".env").write_text((work / ".env").read_text() + line + "\n")
    problems = refused(work, "{}\n", [fix])
    assert problems[0].startswith(f"{work}/.env:")


@pytest.mark.parametrize("line, why", [
    ("SMTP_PASSWORD=pg$HOME pass", "Compose expands $ in an unquoted value; write SMTP_PASSWORD='...'"),
    ('SMTP_PASSWORD="pg$HOME"', "Compose expands $ inside double quotes"),
    ("SMTP_PASSWORD='unterminated", "does not end on this line"),
    ("SMTP_PASSWORD='a' b", "text after the closing quote"),
    ("SMTP PASSWORD=x", "expected KEY=value"),
])
def test_env_values_compose_would_read_differently_are_refused(work, line, why):
    env_with(work, line)
    refused(work, "{}\n", [why])


@pytest.mark.parametrize("line, value", [
    ("SMTP_PASSWORD='pg$HOME pass'", "pg$HOME pass"),
    ('SMTP_PASSWORD="pg\\$HOME $$ \\"q\\""', 'pg$HOME $ "q"'),
    ("SMTP_PASSWORD='it\\'s'", "it's"),
    ("export SMTP_PASSWORD=plain # comment", "plain"),
])
def test_env_values_are_read_literally(work, line, value):
    from bundle.secrets import read_env

    env_with(work, line)
    accepted(work, "{}\n")
    assert read_env(work / ".env")["SMTP_PASSWORD"] == value


def test_a_byte_order_mark_is_tolerated(work):
    env = work / ".env"
    env.write_bytes(b"\xef\xbb\xbf" + env.read_bytes())
    accepted(work, "{}\n")
    assert not env.read_bytes().startswith(b"\xef\xbb\xbf")


def test_a_world_readable_env_gets_a_warning_naming_the_fix(work):
    (work / ".env").chmod(0o644)
    result = render(work)
    assert result.code == 0
    assert f"render.py: warning: {work}/.env: mode 0644 lets other users read the secrets; " \
           f"run: chmod 600 {work}/.env" in result.stderr.splitlines()


def test_a_symlinked_env_is_updated_through_the_link(work):
    secrets = work / "secrets"
    secrets.mkdir()
    target = secrets / "observability.env"
    text = (work / ".env").read_text().replace("GRAFANA_ADMIN_PASSWORD=", "OLD=")
    target.write_text("# mine\n" + text)
    (work / ".env").unlink()
    (work / ".env").symlink_to(target)
    result = render(work)
    assert result.code == 0, result.stderr
    assert (work / ".env").is_symlink()
    text = target.read_text()
    assert text.startswith("# mine\n") and "\nGRAFANA_ADMIN_PASSWORD=" in text
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_env_example_comments_cannot_inject_variables(work):
    # A description is one line of text (it is also quoted in one-line messages).
    overlay = {"secrets": {"x_token": {"env": "X_TOKEN", "generate": False,
                                       "description": "x\nBIND_ADDRESS=0.0.0.0", "doc": "https://x"}}}
    refused(work, yaml.safe_dump(overlay), ["secrets.x_token.description: expected one line of text"])
    overlay["secrets"]["x_token"].update(description="x", doc="https://x\nEVIL=1")
    accepted(work, yaml.safe_dump(overlay))
    from bundle.secrets import read_env

    assert "BIND_ADDRESS" not in read_env(work / ".env.example")
    assert "EVIL" not in read_env(work / ".env.example")
