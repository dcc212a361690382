"""deploy/grafana/gateway-dashboard.json and deploy/prometheus.yml: every PromQL expression
names only series relay/metrics.py registers (read from a Metrics() registry), every agreed
family is on the dashboard, and Prometheus scrapes each compose gateway on its metrics port."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

from relay.config import parse_host_port
from relay.metrics import Metrics
from tests.unit.deploy.files import DEPLOY, yaml_docs

DASHBOARD: dict[str, Any] = json.loads(
    (DEPLOY / "grafana" / "gateway-dashboard.json").read_text(encoding="utf-8")
)
SERIES = re.compile(r"\b(gateway_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
SHOWN = {
    "gateway_messages": "messages by route and state",
    "gateway_transitions": "state changes",
    "gateway_stage_seconds": "stage latency p50/p99",
    "gateway_queue_depth": "queue depths",
    "gateway_batch_size": "batch sizes",
    "gateway_chain_head": "chain head",
    "gateway_chain_final_head": "final head",
    "gateway_endpoint_up": "endpoint up",
    "gateway_endpoint_failovers": "failovers",
    "gateway_verification_failures": "verification failures by check",
    "gateway_leader": "leader",
    "gateway_audit_records": "audit chain length",
}
"""The families the dashboard must show (the agreed list of issue 10)."""


def _registered() -> dict[str, str]:
    """Every series name relay/metrics.py exposes -> its family name."""
    families = Metrics().registry.collect()
    return {
        family.name + suffix: family.name for family in families for suffix in SUFFIXES[family.type]
    }


def _panels() -> list[dict[str, Any]]:
    return [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p["targets"]]


def test_dashboard_is_importable_json_with_unique_panel_ids() -> None:
    """Valid JSON (loaded above), a uid, unique panel ids, each panel with a query."""
    assert DASHBOARD["uid"]
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"


def test_every_series_in_the_dashboard_is_registered_by_relay_metrics() -> None:
    """No panel queries a name the gateway does not export (a typo shows an empty panel)."""
    registered = _registered()
    for expr in _exprs():
        for name in SERIES.findall(expr):
            assert name in registered, f"{name} in {expr!r} is not a series of relay/metrics.py"


def test_the_dashboard_shows_every_agreed_family() -> None:
    registered = _registered()
    used = {registered[n] for e in _exprs() for n in SERIES.findall(e) if n in registered}
    missing = {f"{k} ({v})" for k, v in SHOWN.items() if k not in used}
    assert not missing


def test_quantiles_are_taken_over_histogram_buckets_by_le() -> None:
    """histogram_quantile reads *_bucket series aggregated by le; brackets balance."""
    quantiles = [e for e in _exprs() if "histogram_quantile" in e]
    assert any("gateway_stage_seconds_bucket" in e for e in quantiles)
    for expr in _exprs():
        for open_, close in ("()", "{}", "[]"):
            assert expr.count(open_) == expr.count(close), expr
    for expr in quantiles:
        assert "_bucket" in expr
        assert re.search(r"by \(le[,)]", expr), expr


def test_prometheus_scrapes_each_compose_gateway_on_its_metrics_port() -> None:
    """The scrape targets are exactly the compose gateways (services with a mounted
    gateway.toml that serves metrics), each on its config's [metrics] port."""
    compose = yaml_docs(DEPLOY / "compose.yaml")[0]["services"]
    prometheus = yaml_docs(DEPLOY / "prometheus.yml")[0]
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    expected = set()
    for name, service in compose.items():
        if service.get("command") is not None:
            continue  # one-shot and chain services; gateways run the image's CMD
        sources = [
            v.split(":")[0] for v in service.get("volumes", []) if ":/etc/gateway/gateway.toml" in v
        ]
        if not sources:
            continue
        config = tomllib.loads((DEPLOY / sources[0]).read_text(encoding="utf-8"))
        parsed = parse_host_port(config["metrics"]["listen"])
        assert not isinstance(parsed, str)
        expected.add(f"{name}:{parsed[1]}")
    assert expected == {"gw-a:9464", "gw-a-2:9464", "gw-b:9464"}
    assert targets == expected
    assert "prometheus" in compose
    mounted = [v for v in compose["prometheus"]["volumes"] if v.startswith("./prometheus.yml:")]
    assert mounted


def test_compose_grafana_provisions_the_dashboard_over_the_compose_prometheus() -> None:
    """Grafana's datasource is the prometheus service on its container port, and the
    dashboard provider reads the folder compose mounts the dashboard JSON into."""
    compose = yaml_docs(DEPLOY / "compose.yaml")[0]["services"]
    mounts = dict(v.split(":")[:2] for v in compose["grafana"]["volumes"])
    assert mounts["./grafana/gateway-dashboard.json"].endswith("/gateway-dashboard.json")
    provisioning = DEPLOY / "grafana" / "provisioning"
    source = yaml_docs(provisioning / "datasources" / "prometheus.yml")[0]["datasources"][0]
    url = urlsplit(source["url"])
    assert url.hostname in compose
    assert f":{url.port}" in compose[url.hostname]["ports"][0]
    provider = yaml_docs(provisioning / "dashboards" / "gateway.yml")[0]["providers"][0]
    folder = provider["options"]["path"]
    assert mounts["./grafana/gateway-dashboard.json"] == f"{folder}/gateway-dashboard.json"
    for config in ("datasources/prometheus.yml", "dashboards/gateway.yml"):
        assert f"./grafana/provisioning/{config}" in mounts
