"""Several hosts reach the central stack through its edge only, with TLS and logins;
everything they send arrives with its host; the links the stack writes point at the edge;
a new host is picked up without a restart or a reload."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
import yaml

from scenario import ROOT, WAN, EDGE_NAME
from stack import wait_for

pytestmark = pytest.mark.multihost


def test_every_host_ships_its_samples_with_its_labels(scenario, prom):
    """Agent hosts push node_exporter's series (job node) and their agent's own; the
    pull-mode host is scraped (job node-pull); each series carries its host and the
    host's labels, and `instance` names the host."""
    for name, host in scenario["hosts"].items():
        job = "node" if host["mode"] == "agent" else "node-pull"
        series = wait_for(f"up of {name}", lambda: prom.query(f'up{{job="{job}",host="{name}"}} == 1'),
                          timeout=60)
        labels = series[0]["metric"]
        for key, value in host.get("labels", {}).items():
            assert labels[key] == value, (name, labels)
        assert prom.query(f'node_cpu_seconds_total{{host="{name}"}}'), name
        if host["mode"] == "agent":
            assert labels["instance"] == name and labels["cluster"] == scenario["cluster"], labels
            # Its own scrape runs at another phase than the exporter's: its first sample may
            # arrive a batch later.
            wait_for(f"the agent's own up of {name}",
                     lambda: prom.query(f'up{{job="prometheus-agent",host="{name}"}} == 1'), timeout=60)


def get(url, **kwargs):
    return requests.get(url, timeout=10, **kwargs)


@pytest.mark.parametrize("path", ["/prometheus/-/ready", "/alertmanager/-/ready", "/prometheus/api/v1/query?query=up"])
def test_the_edge_wants_the_admin_login(edge_url, ca_file, admin, agent_login, path):
    assert get(edge_url + path, verify=ca_file).status_code == 401
    assert get(edge_url + path, verify=ca_file, auth=(admin[0], admin[1] + "x")).status_code == 401
    assert get(edge_url + path, verify=ca_file, auth=("nobody", admin[1])).status_code == 401
    # The agents' login opens the remote-write path and nothing else.
    assert get(edge_url + path, verify=ca_file, auth=agent_login).status_code == 401
    assert get(edge_url + path, verify=ca_file, auth=admin).status_code == 200


def test_the_remote_write_path_wants_the_agent_login(edge_url, ca_file, admin, agent_login):
    url = edge_url + "/prometheus/api/v1/write"
    assert requests.post(url, verify=ca_file, data=b"", timeout=10).status_code == 401
    assert requests.post(url, verify=ca_file, data=b"", auth=admin, timeout=10).status_code == 401
    # Past the login: Prometheus itself refuses an empty body (not a 401 or 404).
    answer = requests.post(url, verify=ca_file, data=b"", auth=agent_login, timeout=10)
    assert answer.status_code == 400, (answer.status_code, answer.text)


def test_a_client_that_does_not_trust_the_ca_fails(edge_url, admin):
    with pytest.raises(requests.exceptions.SSLError):
        get(edge_url + "/prometheus/-/ready", auth=admin)



@pytest.mark.parametrize("service, path", [("prometheus", "-/ready"), ("prometheus", "api/v1/query?query=up"),
                                           ("alertmanager", "-/ready"), ("alertmanager-2", "api/v2/status")])
def test_their_own_ports_want_tls_from_the_local_ca_and_their_login(scenario, env, ca_file, admin, service, path):
    """values web_tls (README "Remote access"): Prometheus and both Alertmanagers serve
    HTTPS on their own ports and ask for their own login, not the edge's."""
    from bundle import hosts

    url = hosts.direct_url(scenario, service) + path
    login = hosts.direct_login(scenario, env)
    assert url.startswith("https://") and login
    with pytest.raises(requests.exceptions.SSLError):
        get(url, auth=login)
    # Go's TLS server answers plain HTTP with 400 ("an HTTP request to an HTTPS server").
    assert get(url.replace("https://", "http://", 1), auth=login).status_code == 400
    assert get(url, verify=ca_file).status_code == 401
    assert get(url, verify=ca_file, auth=(login[0], login[1] + "x")).status_code == 401
    assert get(url, verify=ca_file, auth=("nobody", login[1])).status_code == 401
    assert get(url, verify=ca_file, auth=admin).status_code == 401, "the edge's login is not theirs"
    assert get(url, verify=ca_file, auth=login).status_code == 200

# Run inside a container on the simulated internet: what a remote host can reach.
FROM_OUTSIDE = """
import json, socket, ssl, sys, urllib.request, base64
edge, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
for name, target in [("prometheus", 9090), ("alertmanager", 9093), ("alertmanager-2", 9093), ("grafana", 3000)]:
    try:
        socket.create_connection((name, target), timeout=3).close()
        out[name] = "reachable"
    except OSError as exc:
        out[name] = "unreachable"
def fetch(context):
    request = urllib.request.Request(f"https://{edge}:{port}/prometheus/-/ready")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        return urllib.request.urlopen(request, context=context, timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ssl.SSLError) as exc:
        return type(getattr(exc, "reason", exc)).__name__
out["untrusted"] = fetch(ssl.create_default_context())
out["trusted"] = fetch(ssl.create_default_context(cafile="/ca.crt"))
print(json.dumps(out))
"""


def test_from_the_internet_only_the_edge_answers_and_only_over_trusted_tls(scenario, ca_file, admin):
    """A client on the hosts' network: the central's services are not there, the edge is,
    by its name; without the CA the handshake fails, with it the login works."""
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", WAN, "-v", f"{ca_file}:/ca.crt:ro", "--entrypoint", "python3",
         "obsbundle-demo/platform:forky", "-c", FROM_OUTSIDE, EDGE_NAME, str(scenario["ports"]["edge"]), *admin],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["prometheus"] == out["alertmanager"] == out["alertmanager-2"] == out["grafana"] == "unreachable", out
    assert out["untrusted"] == "SSLCertVerificationError", out
    assert out["trusted"] == 200, out


def test_links_point_at_the_edge(scenario, prom):
    """Prometheus knows its address behind the edge: alerts' generatorURL starts there."""
    flags = prom.get("/api/v1/status/flags")["data"]
    base = f"https://{scenario['edge']['hostname']}:{scenario['ports']['edge']}"
    assert flags["web.external-url"] == base + "/prometheus/"
    assert flags["web.route-prefix"] == "/"


def test_a_new_pull_host_is_scraped_without_a_reload(scenario, prom, tmp_path, overlays):
    """One more entry under `hosts` and a render: Prometheus reads the new targets file
    by itself; its configuration is not reloaded."""
    reloads = 'prometheus_config_last_reload_success_timestamp_seconds{job="prometheus"}'
    before = prom.query(reloads)[0]["value"][1]
    extra = tmp_path / "host-d.yaml"
    extra.write_text(yaml.safe_dump({"hosts": {"host-d": {"mode": "pull", "address": "host-c",
                                                          "exporters": ["node"]}}}))
    render = [sys.executable, "render.py", *(a for p in overlays for a in ("--values", str(p)))]
    try:
        result = subprocess.run([*render, "--values", str(extra)], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        wait_for("host-d among the targets", lambda: [
            t for t in prom.get("/api/v1/targets")["data"]["activeTargets"] if t["labels"].get("host") == "host-d"],
            timeout=60)
        assert prom.query(reloads)[0]["value"][1] == before
    finally:
        result = subprocess.run(render, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    wait_for("host-d gone again", lambda: not [
        t for t in prom.get("/api/v1/targets")["data"]["activeTargets"] if t["labels"].get("host") == "host-d"],
        timeout=60)
