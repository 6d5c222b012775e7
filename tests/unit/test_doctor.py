"""make doctor's checks, each with the condition it looks for faked (the engine's answers)."""

from __future__ import annotations

import io

import pytest

from bundle import doctor

pytestmark = pytest.mark.unit


def host(values, version="28.0.1", app_network=None, bind=None, fails=False):
    values = {**values, "app_network": app_network or values["app_network"], "bind_address": bind or values["bind_address"]}

    def docker(*args):
        if fails:
            raise doctor.DockerError("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
        assert args == ("version", "--format", "{{.Server.Version}}")
        return version

    return doctor.Host(values=values, docker=docker)


def report(h, accepted=()):
    out = io.StringIO()
    code = doctor.run(h, set(accepted), out)
    return code, out.getvalue()


def test_an_engine_before_28_is_refused_with_the_reason(values):
    code, out = report(host(values, version="20.10.24+dfsg1"))
    assert code == 1
    line = next(l for l in out.splitlines() if "engine-loopback-exposure" in l)
    assert line.startswith("doctor: blocker: engine-loopback-exposure: Docker Engine 20.10.24+dfsg1 is older than 28.0.0")
    assert "https://github.com/moby/moby/issues/45610" in line
    assert "DOCTOR_ACCEPT=engine-loopback-exposure" in line


@pytest.mark.parametrize("version", ["27.5.1", "19.03.15", "27.99.0-ce"])
def test_every_release_before_the_fix_is_refused(values, version):
    assert report(host(values, version=version))[0] == 1


@pytest.mark.parametrize("version", ["28.0.0", "28.5.2", "29.0.0"])
def test_the_fixed_releases_pass(values, version):
    code, out = report(host(values, version=version))
    assert code == 0, out
    assert "blocker" not in out


def test_the_user_can_accept_it_by_name(values):
    code, out = report(host(values, version="20.10.24"), accepted={"engine-loopback-exposure"})
    assert code == 0
    assert "doctor: accepted: engine-loopback-exposure:" in out


def test_ports_published_beyond_loopback_by_choice_are_not_the_bug(values):
    code, out = report(host(values, version="20.10.24", bind="0.0.0.0"))
    assert code == 0, out


def test_no_engine_is_a_blocker(values):
    code, out = report(host(values, fails=True))
    assert code == 1
    assert "Cannot connect to the Docker daemon" in out


def test_on_old_engines_the_app_network_must_sort_after_the_stacks(values):
    """Before 28.0.0 the first network by name is the gateway that published ports map into."""
    accepted = {"engine-loopback-exposure"}
    assert report(host(values, version="20.10.24", app_network="platform"), accepted)[0] == 0   # observability_default < platform
    code, out = report(host(values, version="20.10.24", app_network="apps"), accepted)
    assert code == 1
    assert "doctor: blocker: network-gateway-order:" in out
    # gw_priority decides on 28+.
    assert report(host(values, version="28.0.0", app_network="apps"))[0] == 0


def test_accepting_an_unknown_check_is_reported(values):
    code, out = report(host(values), accepted={"engine-loopbak"})
    assert code == 0
    assert "DOCTOR_ACCEPT names 'engine-loopbak', which is no check" in out
