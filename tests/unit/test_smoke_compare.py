"""make smoke's "the loaded configuration is the rendered one", on a pair recorded from the
live core (tests/unit/data/smoke/README.md): the services re-serialize what they load
(defaults written out, 15d as 2w1d, paths resolved, matchers quoted), so an unchanged
configuration must compare equal, and each kind of change must be found."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from bundle.smoke.compare import ALERTMANAGER, PROMETHEUS, differences

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "smoke"


def pair(service: str) -> tuple[dict, dict]:
    return tuple(yaml.safe_load((DATA / f"{service}-{kind}.yml").read_text()) for kind in ("rendered", "loaded"))


def test_the_recorded_pairs_are_the_same_configuration():
    assert differences(*pair("prometheus"), PROMETHEUS) == []
    assert differences(*pair("alertmanager"), ALERTMANAGER) == []


def test_the_services_print_it_otherwise():
    """The pair is a real test of the comparison: the texts differ where the meaning does not."""
    rendered, loaded = pair("prometheus")
    assert rendered["rule_files"] == ["rules/*.yml"] and loaded["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert "scrape_protocols" in loaded["scrape_configs"][0] and "scrape_protocols" not in rendered["scrape_configs"][0]
    rendered, loaded = pair("alertmanager")
    assert rendered["route"]["routes"][0]["matchers"] == loaded["route"]["routes"][0]["matchers"]
    assert loaded["receivers"][0]["email_configs"][0]["headers"].keys() > rendered["receivers"][0]["email_configs"][0]["headers"].keys()


def changed(service: str, edit) -> list[str]:
    rendered, loaded = pair(service)
    rendered = copy.deepcopy(rendered)
    edit(rendered, loaded)
    return differences(rendered, loaded, PROMETHEUS if service == "prometheus" else ALERTMANAGER)


def test_a_changed_setting_is_found():
    found = changed("prometheus", lambda r, _: r["global"].update(scrape_interval="7s"))
    assert found == ["global.scrape_interval: rendered '7s', loaded '5s'"]


def test_the_same_duration_written_otherwise_is_no_difference():
    def edit(rendered, loaded):
        rendered["global"]["evaluation_interval"] = "5000ms"
        loaded["global"]["scrape_interval"] = "5s"
    assert changed("prometheus", edit) == []


def test_a_job_rendered_but_not_loaded_is_found():
    def edit(rendered, _):
        rendered["scrape_configs"].append({"job_name": "billing", "static_configs": [{"targets": ["billing:9000"]}]})
    [found] = changed("prometheus", edit)
    assert found.startswith("scrape_configs: 9 rendered") and "[job_name=billing]" in found


def test_a_target_or_label_of_a_job_changed_is_found():
    def edit(rendered, _):
        rendered["scrape_configs"][0]["static_configs"][0]["targets"] = ["api-gateway:8001"]
        del rendered["scrape_configs"][0]["static_configs"][0]["labels"]["service"]
    found = changed("prometheus", edit)
    assert any("[job_name=api-gateway].static_configs[0].targets[0]" in f for f in found), found
    assert any("labels.service: loaded 'api-gateway', not rendered" in f for f in found), found


def test_an_external_label_loaded_but_no_longer_rendered_is_found():
    found = changed("prometheus", lambda r, _: r["global"]["external_labels"].pop("environment"))
    assert found == ["global.external_labels.environment: loaded 'production', not rendered"]


def test_a_section_loaded_but_not_rendered_is_found():
    found = changed("prometheus", lambda _, l: l.update(remote_write=[{"url": "https://metrics.example.com"}]))
    assert found == ["remote_write: loaded, but the rendered configuration has no remote_write"]


def test_alertmanager_route_matcher_and_receiver_changes_are_found():
    def edit(rendered, _):
        rendered["route"]["routes"][1]["matchers"] = ['severity="page"']
        rendered["route"]["group_wait"] = "3s"
        rendered["receivers"].pop()
    found = changed("alertmanager", edit)
    assert "route.group_wait: rendered '3s', loaded '2s'" in found
    assert any("route.routes[receiver=oncall-slack].matchers[0]" in f for f in found), found
    assert any(f.startswith("receivers: 3 rendered") for f in found), found


def test_a_matcher_written_without_quotes_is_the_same_matcher():
    def edit(rendered, _):
        rendered["route"]["routes"][1]["matchers"] = ["severity = critical"]
    assert changed("alertmanager", edit) == []


def test_file_sd_files_are_paths_resolved_against_the_config_dir():
    """Prometheus prints the targets files of file_sd_configs (pull hosts, probes) resolved
    against its configuration's directory, as it does rule_files."""
    def edit(rendered, loaded):
        rendered["scrape_configs"][0]["file_sd_configs"] = [{"files": ["targets/node-pull.yml"]}]
        loaded["scrape_configs"][0]["file_sd_configs"] = [{"files": ["/etc/prometheus/targets/node-pull.yml"],
                                                           "refresh_interval": "5m"}]
    assert changed("prometheus", edit) == []

    def moved(rendered, loaded):
        rendered["scrape_configs"][0]["file_sd_configs"] = [{"files": ["targets/node-pull.yml"]}]
        loaded["scrape_configs"][0]["file_sd_configs"] = [{"files": ["/etc/prometheus/targets/blackbox.yml"]}]
    assert len(changed("prometheus", moved)) == 1
