"""k8s/: each overlay's resources as its kustomization lists them, validated against the
Kubernetes schemas, and every command, variable, port, probe path and metric checked in the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy import truth
from tests.deploy.conftest import K8S, OVERLAYS, by_kind, containers, env_of, load_all

KUBERNETES_VERSION = "1.30.0"
SECRET_KEYS = set(load_all(K8S / "secret.example.yaml")[0]["stringData"])


def _listed_files(directory: Path) -> set[Path]:
    """Every file a kustomization reaches through ``resources`` and ``patches``, recursively."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    found: set[Path] = set()
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        assert target.exists(), f"{directory}/kustomization.yaml lists {entry}, which does not exist"
        found |= _listed_files(target) if target.is_dir() else {target}
    for patch in kustomization.get("patches", []):
        target = (directory / patch["path"]).resolve()
        assert target.is_file(), f"{directory}/kustomization.yaml patches with {patch['path']}, missing"
        found.add(target)
    return found | {directory / "kustomization.yaml"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_lists_every_manifest_beside_it(overlay: str) -> None:
    listed = _listed_files(K8S / "overlays" / overlay)
    for directory in (K8S / "base", K8S / "overlays" / overlay):
        on_disk = {path.resolve() for path in directory.glob("*.yaml")}
        assert on_disk - {p.resolve() for p in listed} == set(), f"{directory} holds unlisted manifests"


def _every_manifest(rendered: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    docs = [(overlay, doc) for overlay, items in rendered.items() for doc in items]
    for extra in (K8S / "secret.example.yaml", *sorted((K8S / "optional").glob("*.yaml"))):
        docs += [(extra.name, doc) for doc in load_all(extra)]
    return docs


def test_every_manifest_passes_kubernetes_validate(rendered: dict[str, list[dict[str, Any]]]) -> None:
    checked, without_schema = 0, set()
    for where, doc in _every_manifest(rendered):
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            checked += 1
        except kubernetes_validate.SchemaNotFoundError:
            without_schema.add(f"{doc['apiVersion']}/{doc['kind']}")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    # Only the custom resource (checked structurally below) may lack a schema.
    assert without_schema == {"keda.sh/v1alpha1/ScaledObject"}
    assert checked >= 14


def _pod_containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (name, deployment["spec"]["template"]["spec"], container)
        for name, deployment in by_kind(docs, "Deployment").items()
        for container in containers(deployment["spec"]["template"]["spec"])
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_commands_variables_and_secrets_exist(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for name, _, container in _pod_containers(rendered[overlay]):
        assert truth.command_problems([*container["command"], *container.get("args", [])]) == [], name
        env = env_of(container)
        assert truth.unknown_env(env) == [], name
        for value in env.values():
            if isinstance(value, dict) and "secretKeyRef" in value:
                assert value["secretKeyRef"]["name"] == "taskpost-secrets"
                assert value["secretKeyRef"]["key"] in SECRET_KEYS, f"{name}: secret key not in the example"


def _container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(item["containerPort"] for item in container["ports"] if item["name"] == port))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_and_probes_are_what_the_processes_serve(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for name, _, container in _pod_containers(rendered[overlay]):
        argv = container["command"]
        if argv[1] == "server":
            serves, port = truth.coordinator_serves, int(argv[argv.index("--port") + 1])
        else:
            serves = truth.agent_serves
            port = int(env_of(container).get("TASKPOST_HEALTH_PORT", truth.AGENT_HEALTH_PORT))
            assert container["livenessProbe"]["httpGet"]["path"] == "/health", name
        assert [item["containerPort"] for item in container["ports"]] == [port], name
        for probe in ("readinessProbe", "livenessProbe"):
            action = container[probe].get("httpGet") or container[probe]["tcpSocket"]
            assert _container_port(container, action["port"]) == port, f"{name} {probe}"
            if "path" in action:
                assert serves(action["path"]), f"{name} {probe}: nothing serves {action['path']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_agents_get_longer_than_their_drain_to_stop(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    agents = 0
    for name, pod, container in _pod_containers(rendered[overlay]):
        if container["command"][1] != "agent":
            continue
        agents += 1
        grace = float(env_of(container).get("TASKPOST_SHUTDOWN_GRACE_S", truth.AGENT_GRACE_S))
        assert pod["terminationGracePeriodSeconds"] >= grace + truth.DRAIN_OVERHEAD_S, name
        assert env_of(container)["TASKPOST_API_KEY"]["secretKeyRef"]["key"] == "worker-api-key"
    assert agents == 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gpu_agent_asks_for_a_gpu_node(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    pod = by_kind(rendered[overlay], "Deployment")["taskpost-agent-gpu"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert env_of(pod["containers"][0])["TASKPOST_WORKER_TYPE"] == "gpu"
    assert pod["nodeSelector"]
    assert any(item["key"] == "nvidia.com/gpu" for item in pod["tolerations"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_scaled_object_per_agent_counts_its_task_types(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    deployments = by_kind(rendered[overlay], "Deployment")
    scaled = by_kind(rendered[overlay], "ScaledObject")
    agents = {name for name in deployments if name.startswith("taskpost-agent-")}
    assert {item["spec"]["scaleTargetRef"]["name"] for item in scaled.values()} == agents
    for item in scaled.values():
        target = item["spec"]["scaleTargetRef"]["name"]
        assert "replicas" not in deployments[target]["spec"], "KEDA owns the replica count"
        (trigger,) = item["spec"]["triggers"]
        assert trigger["type"] == "prometheus"
        assert float(trigger["metadata"]["threshold"]) > 0
        _check_query(trigger["metadata"]["query"], deployments[target])
    assert scaled["taskpost-agent-gpu"]["spec"]["minReplicaCount"] == 0


def _check_query(query: str, deployment: dict[str, Any]) -> None:
    named = truth.query_metrics(query)
    assert named, f"{query!r} names no taskpost_ metric"
    for metric, labels in named:
        assert metric in truth.metric_labels(), f"no metric {metric}"
        assert labels <= truth.metric_labels()[metric], f"{metric} has no label {labels}"
    types = set(re.search(r'type=~"([^"]+)"', query).group(1).split("|"))  # type: ignore[union-attr]
    agent_env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert types == set(agent_env["TASKPOST_TASK_TYPES"].split(","))
    assert types <= truth.TASK_TYPES


def test_the_hpa_alternative_reads_the_same_metric(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployments = by_kind(rendered["sqlite"], "Deployment")
    hpas = load_all(K8S / "optional" / "hpa-external-metrics.yaml")
    assert {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas} == {
        "taskpost-agent-cpu",
        "taskpost-agent-gpu",
    }
    for hpa in hpas:
        (metric,) = hpa["spec"]["metrics"]
        assert metric["external"]["metric"]["name"] in truth.metric_labels()
        (selector,) = metric["external"]["metric"]["selector"]["matchExpressions"]
        assert selector["key"] in truth.metric_labels()[metric["external"]["metric"]["name"]]
        target_env = env_of(
            deployments[hpa["spec"]["scaleTargetRef"]["name"]]["spec"]["template"]["spec"]["containers"][0]
        )
        assert set(selector["values"]) == set(target_env["TASKPOST_TASK_TYPES"].split(","))


def test_sqlite_runs_one_coordinator_on_a_claim(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["sqlite"]
    coordinator = by_kind(docs, "Deployment")["taskpost-coordinator"]["spec"]
    assert coordinator["replicas"] == 1
    assert coordinator["strategy"]["type"] == "Recreate"
    pod = coordinator["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    data_dir = env_of(pod["containers"][0])["TASKPOST_DATA_DIR"]
    assert claims[mounts[data_dir]] in by_kind(docs, "PersistentVolumeClaim")
    assert "TASKPOST_DATABASE_URL" not in env_of(pod["containers"][0])


def test_postgres_runs_replicas_with_a_budget(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["postgres"]
    coordinator = by_kind(docs, "Deployment")["taskpost-coordinator"]["spec"]
    assert coordinator["replicas"] >= 2
    env = env_of(coordinator["template"]["spec"]["containers"][0])
    assert env["TASKPOST_DATABASE_URL"]["secretKeyRef"]["key"] == "database-url"
    (budget,) = by_kind(docs, "PodDisruptionBudget").values()
    assert (
        budget["spec"]["selector"]["matchLabels"].items()
        <= coordinator["template"]["metadata"]["labels"].items()
    )
    blob_claim = by_kind(docs, "PersistentVolumeClaim")["taskpost-blobs"]
    assert blob_claim["spec"]["accessModes"] == ["ReadWriteMany"], "every replica mounts the blobs"
