"""Changes reach the full stack (README "Changing a secret or a setting"): the
credentials Grafana and Elasticsearch keep in their own state follow .env on the
documented command, and a service user's password reaches Elasticsearch and its consumer
with only that consumer recreated. They change .env (the rotation of elastic's password
stays: .env holds the new one), so they run after the other probes (file order)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from bundle.secrets import read_env

pytestmark = pytest.mark.fullstack


def make(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args, f"VALUES={os.environ.get('VALUES', '')}"], cwd=stack.root,
                          capture_output=True, text=True, timeout=1200)


def env(stack) -> dict[str, str]:
    return read_env(stack.root / ".env")


def edit_env(stack, var: str, value: str) -> None:
    path = stack.root / ".env"
    path.write_text(re.sub(rf"(?m)^{var}=.*$", lambda _: f"{var}={value}", path.read_text()))


def recreated(output: str) -> set[str]:
    found = re.search(r"make up: recreated \d+ service\(s\): (.*)", output)
    return set(found.group(1).split(", ")) if found else set()


def login(stack, port: str, path: str, user: str, password: str) -> int:
    return stack.http.get(stack.url(port, path), auth=(user, password), timeout=10).status_code


def test_grafana_admin_password_follows_env_on_make_up(stack):
    """Grafana applies GF_SECURITY_ADMIN_PASSWORD only when it creates the admin: make up
    sets a changed one with Grafana's CLI, and recreates Grafana alone."""
    if not stack.layer("dashboards"):
        pytest.skip("layer dashboards is off")
    grafana = stack.values["grafana"]
    var = stack.values["secrets"][grafana["admin_password_secret"]]["env"]
    user, old = grafana["admin_user"], env(stack)[var]
    new = "grafana-" + os.urandom(12).hex()
    try:
        edit_env(stack, var, new)
        result = make(stack, "up")
        assert result.returncode == 0, result.stdout + result.stderr
        assert recreated(result.stdout) == {"grafana"}, result.stdout
        assert f"set the password of Grafana's admin user {user}" in result.stdout, result.stdout
        assert login(stack, "grafana", "/api/user", user, new) == 200
        assert login(stack, "grafana", "/api/user", user, old) == 401
    finally:
        edit_env(stack, var, old)
        assert make(stack, "up").returncode == 0
    assert login(stack, "grafana", "/api/user", user, old) == 200


def test_elastic_password_is_rotated_and_an_edited_one_stops_make_up(stack):
    """make rotate changes elastic's password with the current one; an .env edited by
    hand instead stops make up with one line naming the secret and the command."""
    if not stack.layer("logs"):
        pytest.skip("layer logs is off")
    old = env(stack)["ELASTIC_PASSWORD"]
    path = "/_security/_authenticate"
    result = make(stack, "rotate", "SECRET=elastic_password")
    assert result.returncode == 0, result.stdout + result.stderr
    new = env(stack)["ELASTIC_PASSWORD"]
    assert new != old
    assert login(stack, "elasticsearch", path, "elastic", new) == 200
    assert login(stack, "elasticsearch", path, "elastic", old) == 401
    assert recreated(result.stdout) >= {"elasticsearch"}, result.stdout
    assert not (stack.root / ".stack" / "rotate" / "elastic_password").exists()

    edit_env(stack, "ELASTIC_PASSWORD", "edited-by-hand-" + os.urandom(6).hex())
    try:
        stopped = make(stack, "up")
        assert stopped.returncode != 0
        assert ("ELASTIC_PASSWORD: Elasticsearch rejects the value in .env for its user elastic"
                in stopped.stderr), stopped.stderr
        assert "make rotate SECRET=elastic_password" in stopped.stderr
    finally:
        edit_env(stack, "ELASTIC_PASSWORD", new)
    assert login(stack, "elasticsearch", path, "elastic", new) == 200


def test_a_service_user_password_reaches_elasticsearch_and_its_consumer(stack):
    """LOGSTASH_WRITER_PASSWORD changed in .env: elasticsearch-setup sets it, Logstash is
    recreated with it, nothing else but the setup job is."""
    if not stack.layer("logs"):
        pytest.skip("layer logs is off")
    spec = stack.values["logstash"]["elasticsearch"]
    var = stack.values["secrets"][spec["password_secret"]]["env"]
    old, new = env(stack)[var], "writer-" + os.urandom(12).hex()
    edit_env(stack, var, new)
    result = make(stack, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert recreated(result.stdout) - {"elasticsearch-setup"} == {"logstash"}, result.stdout
    path = "/_security/_authenticate"
    assert login(stack, "elasticsearch", path, spec["username"], new) == 200
    assert login(stack, "elasticsearch", path, spec["username"], old) == 401
    status = make(stack, "status")
    assert status.returncode == 0, status.stdout
