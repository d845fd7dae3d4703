"""examples/compose cannot run here (no Docker daemon): check everything that can be checked
without it. The files parse; every path the stack mounts or copies exists in the repository;
the Collector's pipelines use only components it defines; the services find each other by the
names and ports they publish; promtool accepts the Prometheus config and its rule file."""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from opentelemetry.instrumentation.gemini.testing.fake_gemini import FakeGemini
from otlp_receiver import OtlpReceiver
from tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "examples" / "compose"
GRAFANA = ROOT / "examples" / "grafana"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text()))


def collector() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE_DIR / "otel-collector.yaml").read_text()))


def services() -> dict[str, Any]:
    return dict(compose()["services"])


def bind_mounts() -> list[tuple[str, Path, str]]:
    """(service, host path, container path) of every bind mount."""
    mounts = []
    for name, service in services().items():
        for volume in service.get("volumes", []):
            host, container, *_ = volume.split(":")
            if host.startswith((".", "/")):
                mounts.append((name, (COMPOSE_DIR / host).resolve(), container))
    return mounts


def container_path(service: str, host: Path) -> str:
    """Where a repository file appears inside a service's container."""
    for name, mounted, target in bind_mounts():
        if name == service and (host == mounted or mounted in host.parents):
            return target + host.as_posix()[len(mounted.as_posix()) :]
    raise AssertionError(f"{host} is not mounted into {service}")


def test_every_bind_mounted_path_exists() -> None:
    mounts = bind_mounts()
    assert mounts
    for service, host, _ in mounts:
        assert host.exists(), f"{service} mounts {host}, which is not in the repository"
        assert ROOT in host.parents, f"{service} mounts {host}, outside the repository"


def test_the_example_image_builds_from_files_in_the_repository() -> None:
    built = [s for s in services().values() if "build" in s]
    assert {s["image"] for s in built} == {"gemini-otel-example:local"}
    for service in built:
        context = (COMPOSE_DIR / service["build"]["context"]).resolve()
        dockerfile = context / service["build"]["dockerfile"]
        assert context == ROOT
        assert dockerfile.exists()
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                *sources, _ = line.split()[1:]
                for source in sources:
                    assert (context / source).exists(), f"COPY {source}: missing"
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().split()
        kept = [p[1:] for p in ignore if p.startswith("!")]
        copied = {
            s
            for line in dockerfile.read_text().splitlines()
            if line.startswith("COPY ")
            for s in line.split()[1:-1]
        }
        assert copied <= set(kept), "the .dockerignore must let every COPY source through"


def test_the_fake_server_runs_beside_the_app_on_its_loopback() -> None:
    app, fake = services()["app"], services()["fake-gemini"]
    assert fake["network_mode"] == "service:app"
    command = fake["command"]
    assert command[:3] == [
        "python",
        "-m",
        "opentelemetry.instrumentation.gemini.testing.fake_gemini",
    ]
    assert command[3] == "8765"
    assert app["command"][:2] == ["opentelemetry-instrument", "python"]
    assert (ROOT / app["command"][2]).exists()  # relative to the image's WORKDIR, /src


def test_the_app_is_configured_by_environment_only() -> None:
    env = services()["app"]["environment"]
    endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname in services()
    receivers = collector()["receivers"]["otlp"]["protocols"]
    protocol = "http" if env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf" else "grpc"
    assert receivers[protocol]["endpoint"].endswith(f":{endpoint.port}")
    assert env["OTEL_TRACES_EXPORTER"] == env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert "OTEL_INSTRUMENTATION_GEMINI_TIER" in env
    assert env["GEMINI_API_KEY"] == "${GEMINI_API_KEY:-}"  # never a key in the file


def test_collector_pipelines_use_defined_components() -> None:
    config = collector()
    pipelines = config["service"]["pipelines"]
    assert {"traces", "metrics"} <= set(pipelines)
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config.get(kind, {}), f"{name} uses undefined {component}"
    for kind in ("receivers", "processors", "exporters"):
        used = {c for p in pipelines.values() for c in p.get(kind, [])}
        assert set(config.get(kind, {})) == used, f"unused {kind}"


def test_traces_go_to_jaeger_and_metrics_to_prometheus() -> None:
    config = collector()
    [traces_exporter] = config["service"]["pipelines"]["traces"]["exporters"]
    host, port = config["exporters"][traces_exporter]["endpoint"].split(":")
    assert host == "jaeger" and port == "4317"  # Jaeger's OTLP gRPC port
    [metrics_exporter] = config["service"]["pipelines"]["metrics"]["exporters"]
    assert metrics_exporter == "prometheus"
    exporter_port = config["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    scrape = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    targets = [
        t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert targets == [f"otel-collector:{exporter_port}"]
    assert "otel-collector" in services()


def test_prometheus_loads_the_config_and_the_alert_rules_it_is_given() -> None:
    prometheus = services()["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_in_container = config_flag.split("=", 1)[1]
    assert container_path("prometheus", COMPOSE_DIR / "prometheus.yml") == config_in_container
    scrape = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    for rule_file in scrape["rule_files"]:
        in_repo = (COMPOSE_DIR / rule_file).resolve()
        assert in_repo.exists()
        # The same relative path resolves inside the container, from the config's directory.
        in_container = posixpath.normpath(
            posixpath.join(posixpath.dirname(config_in_container), rule_file)
        )
        assert container_path("prometheus", in_repo) == in_container


def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    done = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=COMPOSE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_gets_the_provisioning_and_the_dashboard() -> None:
    grafana = services()["grafana"]
    assert container_path("grafana", GRAFANA / "provisioning") == "/etc/grafana/provisioning"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    [provider] = providers["providers"]
    dashboard = container_path("grafana", GRAFANA / "gemini-dashboard.json")
    assert Path(dashboard).parent.as_posix() == provider["options"]["path"]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == dashboard


@pytest.mark.parametrize("source", ["prometheus", "jaeger"])
def test_grafana_datasources_point_at_compose_services(source: str) -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text()
    )["datasources"]
    [entry] = [d for d in sources if d["type"] == source]
    url = urlsplit(entry["url"])
    assert url.hostname == source and url.hostname in services()
    published = {p.split(":")[-1] for p in services()[source].get("ports", [])}
    assert str(url.port) in published


def test_the_compose_app_runs_against_the_fake_server(fake: FakeGemini) -> None:
    """loadgen.py as compose runs it: under opentelemetry-instrument, env config only, scripting
    429s on the fake server; its spans reach an OTLP receiver."""
    launcher = Path(sys.executable).with_name("opentelemetry-instrument")
    if not launcher.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    environment = services()["app"]["environment"]
    with OtlpReceiver("http/protobuf") as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GEMINI_"))}
        env.update(
            {k: str(v) for k, v in environment.items() if k.startswith("OTEL_")},
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_INSTRUMENTATION_GEMINI_TIER="tier_1",
            FAKE_GEMINI_URL=fake.url,
            LOADGEN_MAX_CALLS="3",
            LOADGEN_INTERVAL_SECONDS="0",
            LOADGEN_QUOTA_EVERY="2",
        )
        done = subprocess.run(
            [str(launcher), sys.executable, str(COMPOSE_DIR / "loadgen.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        spans = receiver.spans()
    assert done.returncode == 0, done.stderr
    assert len(spans) == 3, done.stdout + done.stderr
    assert {s.resource["service.name"] for s in spans} == {environment["OTEL_SERVICE_NAME"]}
    quota_ids = {a["gcp.gemini.quota.id"] for s in spans for n, a in s.events if "quota" in n}
    assert quota_ids == {"GenerateRequestsPerMinutePerProjectPerModel-PaidTier"}
