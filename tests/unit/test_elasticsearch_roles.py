"""The Elasticsearch roles and users elasticsearch-setup makes, compared with what Elastic's
(and each client's) documentation says each client needs. The table below is written from
those pages, not from bundle/elasticsearch.yaml: a role that grants more fails here."""

from __future__ import annotations

import json
import re
import shlex

import pytest

pytestmark = pytest.mark.unit

BODY = re.compile(r"^(send|ensure_user) (.*?) <<'JSON'\n(.*?)\nJSON$", re.M | re.S)

# For the default values (logstash.data_stream: dataset platform, namespace default).
STREAM = "logs-platform-default"
LOGS = "logs-platform-*"

# Role -> what its client's job needs, as documented. Index entries: names -> privileges
# (and allow_restricted_indices where the docs require it).
ALLOWED = {
    # Logstash elasticsearch output, data-stream mode: GET / and the license on start
    # (cluster monitor, as Elastic's Beats publisher role), `create` bulk actions
    # (create_doc) and auto-creation of the data stream (auto_configure); manage_template
    # is false for data streams and ILM is not used, so no template or ILM privilege.
    # https://www.elastic.co/docs/reference/logstash/plugins/plugins-outputs-elasticsearch#plugins-outputs-elasticsearch-manage_template
    # https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-create
    # https://www.elastic.co/guide/en/beats/filebeat/current/privileges-to-publish-events.html
    "logstash_writer": {"cluster": {"monitor"},
                        "indices": {(STREAM,): {"create_doc", "auto_configure"}}},
    # APM Server writer role, plus central configuration (read on a restricted index).
    # https://www.elastic.co/docs/solutions/observability/apm/create-assign-feature-roles-to-apm-server-users
    "apm_writer": {"cluster": {"monitor"},
                   "indices": {("traces-apm*", "logs-apm*", "metrics-apm*"): {"auto_configure", "create_doc"},
                               (".apm-agent-configuration",): {"read"}},
                   "restricted": {(".apm-agent-configuration",)}},
    # elasticsearch_exporter, default collectors: "exporter defaults | cluster monitor".
    # https://github.com/prometheus-community/elasticsearch_exporter#elasticsearch-7x-security-privileges
    "cluster_monitor": {"cluster": {"monitor"}, "indices": {}},
    # Grafana Elasticsearch data source: monitor, view_index_metadata, read on its index.
    # https://grafana.com/docs/grafana/latest/datasources/elasticsearch/configure/
    "grafana_reader": {"cluster": {"monitor"},
                       "indices": {(LOGS,): {"read", "view_index_metadata"}}},
    # A person reading logs in Discover: read + mappings on the logs, Discover read in the
    # default space, no cluster privilege.
    # https://www.elastic.co/docs/deploy-manage/users-roles/cluster-or-deployment-auth/kibana-privileges
    "logs_viewer": {"cluster": set(),
                    "indices": {(LOGS,): {"read", "view_index_metadata"}},
                    "applications": {("kibana-.kibana", "space:default"): {"feature_discover_v2.read"}}},
}
# User -> its roles. kibana_admin is Elastic's built-in role: every Kibana feature, no
# Elasticsearch administration. https://www.elastic.co/docs/reference/elasticsearch/roles
USERS = {
    "logstash_writer": ["logstash_writer"],
    "apm_server": ["apm_writer"],
    "grafana_reader": ["grafana_reader"],
    "elasticsearch_exporter": ["cluster_monitor"],
    "logs_viewer": ["logs_viewer"],
    "kibana_admin": ["kibana_admin", "logs_viewer"],
}
# Built-in roles no user of the bundle may hold.
FORBIDDEN_BUILT_INS = {"superuser", "kibana_system", "logstash_system", "editor", "viewer", "kibana_user",
                       "ingest_admin", "machine_learning_admin", "transform_admin", "snapshot_user"}


def calls(script: str) -> dict[str, dict]:
    """path -> JSON body of every create-or-replace call of the script."""
    out = {}
    for kind, args, body in BODY.findall(script):
        words = shlex.split(args)
        path = f"/_security/user/{words[0]}" if kind == "ensure_user" else words[2].split("$BASE_URL", 1)[1]
        out[path] = json.loads(body)
    return out


@pytest.fixture(scope="module")
def rendered(root, tmp_path_factory):
    """The default values (every layer on) rendered, whatever config/ holds now."""
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("roles")
    result = subprocess.run([sys.executable, "render.py", "--output", str(work / "config"),
                             "--env-file", str(work / ".env")], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return work / "config"


@pytest.fixture(scope="module")
def made(rendered) -> dict[str, dict]:
    return calls((rendered / "elasticsearch/setup.sh").read_text(encoding="utf-8"))


def test_every_role_grants_no_more_than_its_client_needs(made):
    roles = {path.rsplit("/", 1)[1]: body for path, body in made.items() if path.startswith("/_security/role/")}
    assert set(roles) == set(ALLOWED)
    for name, role in roles.items():
        allowed = ALLOWED[name]
        assert set(role["cluster"]) <= allowed["cluster"], name
        assert not role.get("run_as"), name
        for entry in role["indices"]:
            names = tuple(entry["names"])
            assert names in allowed["indices"], (name, names)
            assert set(entry["privileges"]) <= allowed["indices"][names], (name, names)
            assert entry.get("allow_restricted_indices", False) == (names in allowed.get("restricted", set())), name
            assert "*" not in names and "query" not in entry and "field_security" not in entry, name
        for entry in role.get("applications", []):
            for resource in entry["resources"]:
                key = (entry["application"], resource)
                assert key in allowed.get("applications", {}), (name, key)
                assert set(entry["privileges"]) <= allowed["applications"][key], (name, key)


def test_every_role_can_do_its_job(made):
    """The other direction: each role holds everything its client's job needs."""
    for name, allowed in ALLOWED.items():
        role = made[f"/_security/role/{name}"]
        assert set(role["cluster"]) == allowed["cluster"], name
        assert {tuple(e["names"]): set(e["privileges"]) for e in role["indices"]} == allowed["indices"], name
        granted = {(e["application"], r): set(e["privileges"]) for e in role.get("applications", []) for r in e["resources"]}
        assert granted == allowed.get("applications", {}), name


def test_users_hold_their_own_role_and_no_administrator_role(made):
    users = {path.rsplit("/", 1)[1]: body for path, body in made.items() if path.startswith("/_security/user/")}
    assert {user: body["roles"] for user, body in users.items()} == USERS
    for user, body in users.items():
        assert not set(body["roles"]) & FORBIDDEN_BUILT_INS, user
    # `elastic` is neither created nor given a stored password: it stays the bootstrap one.
    assert "/_security/user/elastic" not in made


def test_elastic_is_used_by_the_setup_job_alone(root, rendered):
    """Only Elasticsearch (its bootstrap password) and elasticsearch-setup get the elastic
    password; no healthcheck or other job logs in with it."""
    overlay = (rendered / "compose.overlay.yml").read_text(encoding="utf-8")
    import yaml

    services = yaml.safe_load(overlay)["services"]
    holders = {name for name, spec in services.items() if "elastic_password" in spec.get("secrets", [])}
    assert holders == {"elasticsearch", "elasticsearch-setup"}
    assert "elastic" not in re.findall(r"authenticate '?(\w+)", (rendered / "kibana/setup.sh").read_text())
    logs = yaml.safe_load((root / "compose/logs.yml").read_text(encoding="utf-8"))
    check = " ".join(logs["services"]["elasticsearch"]["healthcheck"]["test"])
    assert "ELASTIC_PASSWORD" not in check and "Authorization" not in check and "401" in check
