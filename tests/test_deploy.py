"""deploy/: dashboards as code up to date and querying real metrics; compose and Kubernetes files well formed."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import yaml
from prometheus_client import CollectorRegistry

from dashboard.app import DashboardSettings
from stream.settings import Settings
from workers.metrics import WorkerMetrics
from workers.transcribe.model_files import CACHE_ENV, MODEL_SHA256, PART_FILES, PART_PACKAGES
from workers.transcribe.settings import TranscriberSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
TRANSCRIBER_PORT = TranscriberSettings.model_fields["transcriber_metrics_port"].default


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
    assert len(files) == 3
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
    models = (Settings, DashboardSettings, TranscriberSettings)
    return {f"CALLPULSE_{k.upper()}" for m in models for k in m.model_fields}


def test_the_transcriber_has_dashboard_panels_for_each_of_its_signals():
    doc = json.loads((DEPLOY / "grafana" / "dashboards" / "transcriber.json").read_text())
    queried = " ".join(t["expr"] for p in doc["panels"] for t in p["targets"])
    for metric in ("callpulse:transcriber_rtf:5m", "callpulse_transcriber_queue_utterances", "callpulse_consumer_lag_messages",
                   "callpulse:transcript_latency_seconds:p99_5m", "callpulse:transcript_latency_seconds:p50_5m",
                   "callpulse_transcriber_segments_total", "callpulse_transcriber_errors_total", "callpulse_transcriber_redactions_total"):
        assert metric in queried, f"no transcriber panel queries {metric}"
    assert 'job="callpulse-transcriber"' in queried


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
    tx = services["transcriber"]
    assert tx["command"] == ["transcriber"] and tx["build"]["target"] == "transcriber"
    assert tx["image"] != services["worker-1"]["image"], "the transcriber needs its own image (the transcribe extra)"
    assert set(tx["depends_on"]) == {"topics", "redis"} == set(services["worker-1"]["depends_on"])
    assert "CALLPULSE_TRANSCRIPTS_ENABLED" in tx["environment"]
    assert tx["environment"]["CALLPULSE_TRANSCRIBER_METRICS_PORT"] == str(TRANSCRIBER_PORT)
    assert f"127.0.0.1:{TRANSCRIBER_PORT}/healthz" in " ".join(tx["healthcheck"]["test"])
    assert tx["restart"] == "on-failure", "with transcripts off the process exits 0 and must stay stopped"
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["callpulse-transcriber"]["dns_sd_configs"][0] == {"names": ["transcriber"], "type": "A", "port": TRANSCRIBER_PORT}


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
    scaled = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    assert scaled["callpulse-worker"]["spec"]["triggers"][0]["metadata"]["topic"] == "calls.audio"
    kafka = next(tr for tr in scaled["callpulse-transcriber"]["spec"]["triggers"] if tr["type"] == "kafka")
    assert kafka["metadata"]["consumerGroup"] == TranscriberSettings.model_fields["transcriber_app_id"].default
    assert kafka["metadata"]["topic"] == "calls.audio"
    kust = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for gen in kust["configMapGenerator"]:
        for f in gen["files"]:
            assert (DEPLOY / "k8s" / f.split("=")[-1]).exists(), f


def test_the_transcriber_deployment_has_its_own_resources_probes_and_scrape_port():
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "callpulse.yaml").read_text()) if d]
    deps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    tx = deps["callpulse-transcriber"]["spec"]["template"]
    worker = deps["callpulse-worker"]["spec"]["template"]
    assert tx["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(TRANSCRIBER_PORT)}
    assert worker["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    (c,) = tx["spec"]["containers"]
    assert c["args"] == ["transcriber"] and c["image"].startswith("callpulse-transcriber:")
    assert c["ports"] == [{"name": "metrics", "containerPort": TRANSCRIBER_PORT}]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["CALLPULSE_TRANSCRIBER_METRICS_PORT"] == str(TRANSCRIBER_PORT) and env["CALLPULSE_TRANSCRIBER_THREADS"] == "1"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe
    assert c["startupProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    # One whole core per process (CTranslate2 with one thread), requested and limited alike.
    assert c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"] == "1"
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    settings = next(d for d in docs if d["kind"] == "ConfigMap")
    assert settings["data"]["CALLPULSE_TRANSCRIPTS_ENABLED"] == "true"


def test_the_kubernetes_scrape_config_names_jobs_as_the_rules_select_them():
    cfg = yaml.safe_load((DEPLOY / "k8s" / "prometheus-scrape.yml").read_text())
    (job,) = cfg["scrape_configs"]
    relabel = {tuple(r["source_labels"]): r for r in job["relabel_configs"]}
    assert relabel[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]["target_label"] == "job"
    addr = relabel[("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
    # Prometheus anchors relabel regexes and joins the source labels with ';'.
    for address in ("10.1.2.3:8080", "10.1.2.3"):
        m = re.fullmatch(addr["regex"], f"{address};{TRANSCRIBER_PORT}")
        assert m and m.expand(addr["replacement"].replace("$", "\\")) == f"10.1.2.3:{TRANSCRIBER_PORT}"
    rules = (DEPLOY / "prometheus" / "alerting_rules.yml").read_text()
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "callpulse.yaml").read_text()) if d]
    for d in docs:
        if d["kind"] == "Deployment" and "prometheus.io/scrape" in d["spec"]["template"]["metadata"].get("annotations", {}):
            assert f'job="{d["metadata"]["labels"]["app.kubernetes.io/name"]}"' in rules


def dockerfile_stages() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^(?=FROM )", text, flags=re.M)[1:]
    return {re.match(r"FROM \S+ AS (\S+)", s).group(1): s for s in stages}


def test_dockerfile_is_slim_non_root_and_torch_free():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "python:3.11-slim" in text and re.search(r"^USER 10001$", text, re.M)
    assert "torch" not in text.replace("no torch", "")
    stages = dockerfile_stages()
    assert list(stages)[-1] == "worker", "the default image (last stage) is the worker's"
    for name in ("worker", "transcriber"):
        assert re.search(r"^USER 10001$", stages[name], re.M), name
    assert '"callpulse[transcribe]"' in stages["transcriber"] and "transcribe" not in stages["worker"]
    assert re.search(r'^CMD \["transcriber"\]$', stages["transcriber"], re.M)
    assert f"EXPOSE {TRANSCRIBER_PORT}" in stages["transcriber"]
    assert re.search(rf"^ENV {CACHE_ENV}=/\S+$", stages["transcriber"], re.M)


def test_the_transcriber_image_joins_the_model_at_build_so_a_start_writes_nothing(tmp_path):
    """Runs the transcriber stage's own build commands (its `python -c` lines) against throwaway copies of the
    two model packages, then loads the model as a container start would: no parts left, nothing written."""
    try:
        sources = [Path(str(resources.files(p))) for p in PART_PACKAGES]
    except ModuleNotFoundError:
        pytest.skip("the transcribe extra is not installed")
    site = tmp_path / "site"
    for src in sources:
        shutil.copytree(src, site / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)]), CACHE_ENV: str(cache)}

    def py(code: str) -> str:
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    # The copies, not the environment's packages, are what the build commands will delete from.
    where = py("from importlib import resources; print(*(resources.files(p) for p in %r))" % (PART_PACKAGES,)).split()
    assert all(Path(w).is_relative_to(site) for w in where), where
    build = re.findall(r'python -c "([^"]+)"', dockerfile_stages()["transcriber"])
    assert len(build) == 2, build
    for code in build:
        py(code)
    assert not any((site / p / "data" / f).exists() for p, f in zip(PART_PACKAGES, PART_FILES)), "the halves stay in the image"
    assert all(s.joinpath("data", f).exists() for s, f in zip(sources, PART_FILES)), "the build touched the real packages"
    model = cache / f"whisper-base-ct2-{MODEL_SHA256[:12]}"

    def tree() -> dict[str, tuple[int, int]]:
        return {str(f.relative_to(cache)): (f.stat().st_mtime_ns, f.stat().st_size) for f in cache.rglob("*")}

    before = tree()
    assert sorted(before) == [model.name] + [f"{model.name}/{n}" for n in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")]
    start = py("from workers.transcribe.recognizer import Recognizer; print(Recognizer(threads=1).path)")
    assert start.strip() == str(model)
    assert tree() == before
    # And the baked file is still what was pinned: a start verifies it, it does not trust it.
    with open(model / "model.bin", "r+b") as f:
        f.seek(1 << 20)
        flipped = bytes(b ^ 0xFF for b in f.read(8))
        f.seek(1 << 20)
        f.write(flipped)
    r = subprocess.run([sys.executable, "-c", "from workers.transcribe.recognizer import Recognizer; Recognizer()"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode != 0 and MODEL_SHA256 in r.stderr
