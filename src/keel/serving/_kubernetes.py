"""Container build file and Kubernetes manifests (Deployment, Service, HPA) for a model server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.types import validate_name

__all__ = ["KubernetesTarget", "render_manifests", "write_manifests"]


@dataclass(frozen=True, slots=True)
class KubernetesTarget:
    """What the generated manifests describe.

    Attributes:
        deployment: the Keel deployment the pods serve (``keel serve --deployment``).
        image: the container image built from the generated Dockerfile.
        namespace: the Kubernetes namespace.
        replicas / max_replicas: the HPA's bounds; ``cpu_percent`` its target utilisation.
        db_secret: the Secret holding ``KEEL_DB_URL`` (key ``db-url``); the database URL is
            never written into a manifest.
    """

    deployment: str
    image: str = "keel-model-server:latest"
    namespace: str = "default"
    port: int = 8080
    replicas: int = 2
    max_replicas: int = 10
    cpu_percent: int = 70
    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    db_secret: str = "keel-db"  # noqa: S105  (a Secret name, not a secret)
    keel_version: str = ""


def _k8s_name(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")[:63].strip("-")


def render_manifests(target: KubernetesTarget) -> dict[str, Any]:
    """The Deployment, Service and HorizontalPodAutoscaler as dictionaries."""
    validate_name(target.deployment, what="deployment name")
    name = _k8s_name(f"keel-{target.deployment}")
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "keel"}
    probe = {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "replicas": target.replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [
                        {
                            "name": "model-server",
                            "image": target.image,
                            "args": [
                                "serve",
                                "--deployment",
                                target.deployment,
                                "--host",
                                "0.0.0.0",  # noqa: S104  (inside the pod)
                                "--port",
                                str(target.port),
                            ],
                            "ports": [{"name": "http", "containerPort": target.port}],
                            "env": [
                                {
                                    "name": "KEEL_DB_URL",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": target.db_secret, "key": "db-url"}
                                    },
                                }
                            ],
                            "readinessProbe": probe,
                            "livenessProbe": {
                                **probe,
                                "httpGet": {"path": "/v2/health/live", "port": "http"},
                            },
                            "startupProbe": {**probe, "failureThreshold": 60},
                            "resources": {
                                "requests": {
                                    "cpu": target.cpu_request,
                                    "memory": target.memory_request,
                                },
                                "limits": {"memory": target.memory_limit},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": False,
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": target.replicas,
            "maxReplicas": target.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": target.cpu_percent,
                        },
                    },
                }
            ],
        },
    }
    return {"deployment.yaml": deployment, "service.yaml": service, "hpa.yaml": hpa}


def _dockerfile(target: KubernetesTarget) -> str:
    pin = f"=={target.keel_version}" if target.keel_version else ""
    return f"""# The Keel model server: one uvicorn worker per container (TCP_NODELAY kept);
# scale with replicas (the HorizontalPodAutoscaler), not with workers.
FROM python:3.11-slim
RUN useradd --uid 10001 --create-home keel
RUN pip install --no-cache-dir "keel-mlops[server,ml,sklearn,data,postgres]{pin}"
USER 10001
ENV KEEL_HOME=/home/keel/.keel
EXPOSE {target.port}
HEALTHCHECK CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:{target.port}/v2/health/ready')"
ENTRYPOINT ["keel"]
CMD ["serve", "--deployment", "{target.deployment}", "--host", "0.0.0.0", "--port", "{target.port}"]
"""


def write_manifests(target: KubernetesTarget, out: Path) -> list[Path]:
    """Write ``Dockerfile`` and the three manifests into ``out``; return the paths."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "Dockerfile"]
    written[0].write_text(_dockerfile(target), encoding="utf-8")
    for filename, manifest in render_manifests(target).items():
        path = out / filename
        path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written
