"""deploy/k8s/: every object valid for a pinned Kubernetes version (strict: unknown fields are
errors), and the pod's wiring checked against the gateway itself: the init container's key
copy run as written, then the ConfigMap's gateway.toml validated on the files the pod's mounts
give it; ports, probes, env, selectors and the network policy agree with that config."""

from __future__ import annotations

import copy
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest

from adapters.keys import EnvKeySource
from relay.config import GatewayConfig, parse_config, parse_host_port, require_runnable
from tests import pg
from tests.unit.deploy.files import (
    DEPLOY,
    GATEWAY,
    dockerfile_stages,
    make_identities,
    rooted,
    under,
    yaml_docs,
)

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.37.0"
"""The schema the manifests are checked against (kubernetes-validate's bundled schemas)."""
KUSTOMIZATION = yaml_docs(K8S / "kustomization.yaml")[0]
OBJECTS = [doc for name in KUSTOMIZATION["resources"] for doc in yaml_docs(K8S / name)]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


DEPLOYMENT = _one("StatefulSet", "gateway")
POD = DEPLOYMENT["spec"]["template"]
POD_LABELS: dict[str, str] = POD["metadata"]["labels"]
GATEWAY_CONTAINER = next(c for c in POD["spec"]["containers"] if c["name"] == "gateway")
INIT = {c["name"]: c for c in POD["spec"]["initContainers"]}
VOLUMES = {v["name"]: v for v in POD["spec"]["volumes"]}


@pytest.mark.parametrize(
    "obj", OBJECTS, ids=[f"{o['kind']}/{o['metadata']['name']}" for o in OBJECTS]
)
def test_object_is_valid_for_the_pinned_kubernetes_version(obj: dict[str, Any]) -> None:
    """kubernetes_validate with strict schemas: a wrong type or an unknown field fails."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validation_is_strict() -> None:
    """A misspelt field in the StatefulSet is rejected, so the test above can fail."""
    broken = copy.deepcopy(DEPLOYMENT)
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_once() -> None:
    listed = KUSTOMIZATION["resources"]
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present
    images = {i["name"] for i in KUSTOMIZATION["images"]}
    for container in [*POD["spec"]["containers"], *POD["spec"]["initContainers"]]:
        assert container["image"].split(":")[0] in images


def _mounts(container: dict[str, Any]) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = container.get("volumeMounts", [])
    return mounts


def _volume_files(name: str, identities: Path) -> dict[str, bytes]:
    """The files a volume holds: a ConfigMap's data; a Secret's keys filled with what
    `gateway init` made for org-a (its own) and org-b (the peer's public files)."""
    volume = VOLUMES[name]
    made = {
        "gateway.crt": identities / "org-a" / "secrets" / "gateway.crt",
        "gateway.key": identities / "org-a" / "secrets" / "gateway.key",
        "ca.crt": identities / "org-a" / "secrets" / "ca.crt",
        "audit.key": identities / "org-a" / "secrets" / "audit.key",
        "org-b.crt": identities / "org-b" / "public" / "gateway.crt",
        "org-b-ca.crt": identities / "org-b" / "public" / "ca.crt",
    }
    if "configMap" in volume:
        data = _one("ConfigMap", volume["configMap"]["name"])["data"]
        return {k: made[k].read_bytes() if k in made else v.encode() for k, v in data.items()}
    secret = _one("Secret", volume["secret"]["secretName"])
    return {key: made[key].read_bytes() for key in secret["stringData"]}


def _mount(root: Path, mount: dict[str, Any], identities: Path) -> None:
    target = under(root, mount["mountPath"])
    if "emptyDir" in VOLUMES[mount["name"]]:
        target.mkdir(parents=True, exist_ok=True)
        return
    files = _volume_files(mount["name"], identities)
    if "subPath" in mount:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[mount["subPath"]])
        return
    target.mkdir(parents=True, exist_ok=True)
    for key, content in files.items():
        (target / key).write_bytes(content)


@pytest.fixture(scope="module")
def pod_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pod's file system: the init container `keys` run as written (its mount paths moved
    under a temporary root), then the gateway container's mounts."""
    identities = make_identities(tmp_path_factory.mktemp("identities"), "org-a", "org-b")
    root = tmp_path_factory.mktemp("pod")
    keys = INIT["keys"]
    for mount in _mounts(keys):
        _mount(root, mount, identities)
    assert keys["command"][:2] == ["sh", "-c"]
    script = keys["command"][2]
    for mount in sorted(_mounts(keys), key=lambda m: -len(m["mountPath"])):
        script = script.replace(
            mount["mountPath"] + "/", str(under(root, mount["mountPath"])) + "/"
        )
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    for mount in _mounts(GATEWAY_CONTAINER):
        if mount["name"] not in {m["name"] for m in _mounts(keys)}:
            _mount(root, mount, identities)
    return root


def _config_path() -> str:
    cmd = dockerfile_stages(DEPLOY / "Dockerfile")[1][-1].exec_form("CMD")
    return cmd[cmd.index("--config") + 1]


@pytest.fixture(scope="module")
def config(pod_root: Path) -> GatewayConfig:
    path = under(pod_root, _config_path())
    loaded = parse_config(rooted(path.read_text(encoding="utf-8"), pod_root), path)
    require_runnable(loaded)
    return loaded


def test_the_configmaps_config_passes_strict_validation_in_the_pod(config: GatewayConfig) -> None:
    """The gateway's own checks (TLS files exist, key matches certificate, key mode 0600, CA
    issued the certificates, audit key loads) pass on the files the pod's mounts give it."""
    assert config.gateway is not None
    assert config.gateway.tls is not None
    assert stat.S_IMODE(config.gateway.tls.key.stat().st_mode) == 0o600
    assert config.audit.key is not None
    assert stat.S_IMODE(config.audit.key.stat().st_mode) == 0o600
    assert config.store.postgres


def test_gateway_config_validate_accepts_it(pod_root: Path) -> None:
    """The image's `gateway` command itself: `gateway config validate` exits 0."""
    path = under(pod_root, _config_path())
    copy_path = path.with_name("rooted.toml")
    copy_path.write_text(rooted(path.read_text(encoding="utf-8"), pod_root), encoding="utf-8")
    done = subprocess.run(
        [str(GATEWAY), "config", "validate", str(copy_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_path_in_the_config_is_mounted_in_each_container_that_reads_it() -> None:
    """The gateway and the migrate init container (both load the whole config, TLS and audit
    files included) mount every absolute path the ConfigMap's gateway.toml names."""
    text = _one("ConfigMap", "gateway-config")["data"]["gateway.toml"]
    paths = re.findall(r"\"(/[^\"]*)\"", text)
    assert paths
    for container in (GATEWAY_CONTAINER, INIT["migrate"]):
        mounts = [m["mountPath"] for m in _mounts(container)]
        for path in paths:
            assert any(path == m or path.startswith(m + "/") for m in mounts), (
                f"{container['name']}: {path} is on no mount"
            )


def _port(listen: str | None) -> int:
    assert listen is not None
    parsed = parse_host_port(listen)
    assert not isinstance(parsed, str)
    return parsed[1]


def test_container_ports_probes_and_services_match_the_config(config: GatewayConfig) -> None:
    """grpc/api/metrics container ports are the config's listen ports; liveness and readiness
    ask /livez and /readyz on the metrics port; every Service targets a named port that exists."""
    assert config.gateway is not None
    ports = {p["name"]: p["containerPort"] for p in GATEWAY_CONTAINER["ports"]}
    assert ports == {
        "grpc": config.gateway.port,
        "api": _port(config.api.listen),
        "metrics": _port(config.metrics.listen),
    }
    assert GATEWAY_CONTAINER["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert GATEWAY_CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    pod_names = {f"gateway-{i}" for i in range(DEPLOYMENT["spec"]["replicas"])}
    selected = set()
    for service in (o for o in OBJECTS if o["kind"] == "Service"):
        selector = dict(service["spec"]["selector"])
        one_pod = selector.pop("statefulset.kubernetes.io/pod-name", None)
        assert selector.items() <= POD_LABELS.items()
        if one_pod is not None:
            assert one_pod in pod_names
            selected.add(one_pod)
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
            assert port["port"] == ports[port["targetPort"]]
    assert selected == pod_names, "each replica needs a peer Service of its own"
    metrics = _one("Service", "gateway-metrics")
    assert DEPLOYMENT["spec"]["serviceName"] == "gateway-metrics"
    assert metrics["spec"]["clusterIP"] == "None"
    assert metrics["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])


def _env_secret(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
    }


def test_keys_and_store_url_come_from_secrets(config: GatewayConfig) -> None:
    """Every env variable the config names ([store] url_env, the served chains' keys) is set
    from a Secret key that the templates define; the migrate init container gets the URL too."""
    env = _env_secret(GATEWAY_CONTAINER)
    needed = {config.store.url_env}
    for name in config.served_chains:
        chain = config.chains[name]
        for source in (chain.relayer_key, chain.sender_key):
            assert isinstance(source, EnvKeySource)
            needed.add(source.env)
    assert needed <= env.keys()
    for secret, key in env.values():
        assert key in _one("Secret", secret)["stringData"]
    assert config.store.url_env is not None
    assert _env_secret(INIT["migrate"])[config.store.url_env] == env[config.store.url_env]
    assert INIT["migrate"]["args"][:2] == ["db", "migrate"]


def test_pods_run_non_root_with_a_read_only_root_file_system(config: GatewayConfig) -> None:
    """runAsNonRoot, no privilege escalation, all capabilities dropped, read-only root file
    system for every container; the gateway's data folder is a writable emptyDir."""
    assert POD["spec"]["securityContext"]["runAsNonRoot"] is True
    for container in [*POD["spec"]["containers"], *POD["spec"]["initContainers"]]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "limits" in container["resources"]
        assert "requests" in container["resources"]
    assert config.gateway is not None
    data = [m for m in _mounts(GATEWAY_CONTAINER) if m["mountPath"] == "/var/lib/gateway"]
    assert str(config.gateway.data_dir).endswith(data[0]["mountPath"])
    assert "emptyDir" in VOLUMES[data[0]["name"]]
    assert not data[0].get("readOnly", False)


def test_two_replicas_a_disruption_budget_of_one_and_a_network_policy(
    config: GatewayConfig,
) -> None:
    """2 replicas; the PDB keeps 1; the NetworkPolicy selects the pods, lets in the peer, API
    and metrics ports only, and lets out DNS and PostgreSQL among others."""
    assert config.gateway is not None
    assert DEPLOYMENT["spec"]["replicas"] == 2
    pdb = _one("PodDisruptionBudget", "gateway")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= POD_LABELS.items()
    policy = _one("NetworkPolicy", "gateway")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= POD_LABELS.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    ingress = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress == {config.gateway.port, _port(config.api.listen), _port(config.metrics.listen)}
    egress = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {53, 5432} <= egress
    peer = next(iter(config.peers.values()))
    assert peer.port in egress


def test_secret_templates_hold_placeholders_only() -> None:
    """No key material in the repository: every Secret value is a REPLACE placeholder."""
    for secret in (o for o in OBJECTS if o["kind"] == "Secret"):
        for key, value in secret["stringData"].items():
            assert "REPLACE" in value, f"{secret['metadata']['name']}.{key}"
            assert "PRIVATE KEY" not in value


def test_the_migrate_init_container_runs_as_written(pod_root: Path) -> None:
    """Its args, with the config on the pod's mounts and the store URL its env names, bring
    an empty PostgreSQL database to the gateway's schema: `gateway db status` then exits 0.
    Skipped when the local PostgreSQL server is unreachable."""
    url = pg.fresh_url(migrated=False)
    migrate = INIT["migrate"]
    argv = list(migrate["args"])
    path = under(pod_root, argv[argv.index("--config") + 1])
    local = path.with_name("migrate.toml")
    local.write_text(rooted(path.read_text(encoding="utf-8"), pod_root), encoding="utf-8")
    argv[argv.index("--config") + 1] = str(local)
    env = {**os.environ, **dict.fromkeys(_env_secret(migrate), url)}
    done = subprocess.run(
        [str(GATEWAY), *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "applied" in done.stdout
    status = subprocess.run(
        [str(GATEWAY), "db", "status", "--config", str(local)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
