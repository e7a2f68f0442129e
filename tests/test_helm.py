"""deploy/helm/parley rendered offline (Helm's own library via helm-python-sdk) with two value sets,
every manifest validated against the Kubernetes schemas of two versions (kubernetes-validate).

KEDA's kinds are custom resources without a schema in kubernetes-validate; their shape is checked
field by field below instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "parley"
KUBE_VERSIONS = ("1.30.0", "1.37.0")
VALUE_SETS = ("cpu-values.yaml", "gpu-keda-values.yaml")
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def _render(values_file: str) -> list[dict]:
    from helm_python import Chart

    values = yaml.safe_load((CHART / "ci" / values_file).read_text())
    with Chart.load(str(CHART)) as chart:
        rendered = chart.render(values=values, name="parley", namespace="parley", is_install=True)
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def _by_kind(manifests: list[dict], kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_chart_lints_clean(values_file):
    from helm_python import lint

    values = yaml.safe_load((CHART / "ci" / values_file).read_text())
    for version in KUBE_VERSIONS:
        report = lint(str(CHART), values, strict=True, kube_version=f"v{version}")
        assert not report["errors"], report
        assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_every_manifest_validates_against_two_kubernetes_versions(values_file):
    import kubernetes_validate

    manifests = _render(values_file)
    checked = 0
    for manifest in manifests:
        if manifest["kind"] in KEDA_KINDS:
            continue
        for version in KUBE_VERSIONS:
            # strict: an unknown or misspelt field fails too
            kubernetes_validate.validate(manifest, version, strict=True)
            checked += 1
    assert checked >= 2 * 13


def test_cpu_values_web_and_worker_scale_gpu_runs_on_cpu_and_secrets_are_referenced():
    manifests = _render("cpu-values.yaml")
    deployments = _by_kind(manifests, "Deployment")
    assert set(deployments) == {"parley-web", "parley-worker", "parley-gpu", "parley-beat"}
    assert set(_by_kind(manifests, "HorizontalPodAutoscaler")) == {"parley-web", "parley-worker"}
    assert set(_by_kind(manifests, "PodDisruptionBudget")) == {"parley-web", "parley-worker", "parley-gpu"}
    assert not _by_kind(manifests, "ScaledObject") and not _by_kind(manifests, "Secret")
    gpu = deployments["parley-gpu"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in gpu["containers"][0]["resources"]["limits"]
    assert {"name": "PARLEY_DEVICE", "value": "cpu"} in gpu["containers"][0]["env"]
    for deployment in deployments.values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "parley-secrets"}}]
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    web = deployments["parley-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/healthz"
    allowed = next(e["value"] for e in web["env"] if e["name"] == "ALLOWED_HOSTS")
    assert allowed == "chat.example.org,$(POD_IP),localhost"  # kubelet probes address the pod IP


def test_gpu_keda_values_gpu_nodes_queue_scaling_beat_and_migration_hook():
    manifests = _render("gpu-keda-values.yaml")
    deployments = _by_kind(manifests, "Deployment")
    gpu = deployments["parley-gpu"]
    pod = gpu["spec"]["template"]["spec"]
    assert "replicas" not in gpu["spec"]  # KEDA owns the replica count
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["containers"][0]["image"] == "registry.example.com/parley-cuda:0.1.0"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["initContainers"][0]["args"] == ["models"]

    scaled = _by_kind(manifests, "ScaledObject")["parley-gpu"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "parley-gpu"
    triggers = scaled["spec"]["triggers"]
    assert [t["metadata"]["listName"] for t in triggers] == [
        "gpu", "gpu.qwen2.5-coder-0.5b", "gpu.whisper-tiny.en", "gpu.piper-en-us-joe"]
    assert all(t["type"] == "redis" and t["authenticationRef"]["name"] == "parley-redis" for t in triggers)
    auth = _by_kind(manifests, "TriggerAuthentication")["parley-redis"]
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": "parley-secrets",
                                                "key": "REDIS_PASSWORD"}]

    beat = deployments["parley-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"] == {"type": "Recreate"}
    job = _by_kind(manifests, "Job")["parley-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    ingress = _by_kind(manifests, "Ingress")["parley"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == ["chat.example.org", "voice.example.org"]
