"""deploy/: dashboards as code up to date and querying real metrics; compose and Kubernetes files well formed."""

import importlib.util
import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from dashboard.app import DashboardSettings
from stream.settings import Settings
from workers.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def exported_series() -> set[str]:
    reg = CollectorRegistry()
    WorkerMetrics(reg)
    names = set()
    for fam in reg.collect():
        names.add(fam.name)
        names |= {fam.name + s for s in ("_total", "_bucket", "_sum", "_count", "_created")}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "recording_rules.yml").read_text())
    names |= {r["record"] for g in rules["groups"] for r in g["rules"]}
    return names | {"up"}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w.startswith("callpulse")}


def test_grafana_dashboards_are_generated_and_current():
    spec = importlib.util.spec_from_file_location("gen", DEPLOY / "grafana" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for name, text in gen.render().items():
        assert (DEPLOY / "grafana" / "dashboards" / name).read_text() == text, f"{name} is stale: run python deploy/grafana/generate.py"


def test_every_queried_metric_exists():
    known = exported_series()
    files = list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert len(files) == 2
    for f in files:
        for p in json.loads(f.read_text())["panels"]:
            for t in p["targets"]:
                unknown = metric_names(t["expr"]) - known
                assert not unknown, f"{f.name} panel {p['title']!r} queries unknown {unknown}"
    for f in ("recording_rules.yml", "alerting_rules.yml"):
        for g in yaml.safe_load((DEPLOY / "prometheus" / f).read_text())["groups"]:
            for r in g["rules"]:
                unknown = metric_names(r["expr"]) - known
                assert not unknown, f"{f} {r.get('record') or r.get('alert')} uses unknown {unknown}"


def settings_env_names() -> set[str]:
    return {f"CALLPULSE_{k.upper()}" for k in Settings.model_fields} | {f"CALLPULSE_{k.upper()}" for k in DashboardSettings.model_fields}


def test_compose_file():
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"kafka", "redis", "topics", "worker-1", "worker-2", "worker-3", "dashboard", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka") and "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), f"{name} mounts missing {src}"
        env = svc.get("environment", {})
        for key in env if isinstance(env, dict) else []:
            if key.startswith("CALLPULSE_"):
                assert key in settings_env_names(), f"{name}: {key} is not a callpulse setting"
    assert services["worker-1"]["command"] == ["worker"]


def test_kubernetes_manifests():
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "callpulse.yaml").read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "ScaledObject", "Service"} <= kinds
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"]
        if d["kind"] == "Deployment":
            spec = d["spec"]["template"]["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        if d["kind"] in ("ConfigMap", "Secret"):
            for key in (d.get("data") or d.get("stringData")):
                assert key in settings_env_names(), f"{d['metadata']['name']}: {key}"
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    assert scaled["spec"]["triggers"][0]["metadata"]["topic"] == "calls.audio"
    kust = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for gen in kust["configMapGenerator"]:
        for f in gen["files"]:
            assert (DEPLOY / "k8s" / f.split("=")[-1]).exists(), f


def test_dockerfile_is_slim_non_root_and_torch_free():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "python:3.11-slim" in text and re.search(r"^USER 10001$", text, re.M)
    assert "torch" not in text.replace("no torch", "")
