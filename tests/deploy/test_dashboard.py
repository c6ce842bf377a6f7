"""The Grafana dashboard and its Prometheus, offline: the JSON is a dashboard Grafana can
provision, every metric it names is one the gateway or TF Serving exports, and the monitoring
profile of docker-compose.yml scrapes and mounts what the files say. (Every expression is
parsed by promtool in scripts/validate_deploy.sh.)"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring/grafana/dashboards/mnist.json"
PROVISIONING = ROOT / "monitoring/grafana/provisioning"
PROMETHEUS = ROOT / "monitoring/prometheus.yml"
GRID_COLUMNS = 24

# TF Serving's own Prometheus metrics, as tensorflow_model_server 2.20.0 exports them. Its
# exporter (tensorflow_serving/util/prometheus_exporter.cc) names each TensorFlow monitoring
# metric by replacing every character outside [a-zA-Z0-9_] with ':', so
# "/tensorflow/serving/request_count" becomes ":tensorflow:serving:request_count"; counters
# and gauges keep the bare name (no _total), histograms (Samplers) add _bucket, _sum, _count.
TF_SERVING_COUNTERS_AND_GAUGES = {
    # servables/tensorflow/util.cc: model_name, status (absl code name: OK, NOT_FOUND, ...)
    ":tensorflow:serving:request_count",
    ":tensorflow:serving:request_example_count_total",  # util.cc: model
    ":tensorflow:serving:request_log_count",  # core/request_logger.cc: model_name, status_code
    ":tensorflow:serving:model_warmup_records_read",  # saved_model_warmup_util.cc
    ":tensorflow:serving:mlmd_map",  # machine_learning_metadata.cc (gauge)
    ":tensorflow:serving:batching_session:wrapped_run_count",  # batching/batching_session.cc
    # TensorFlow's own, in the same registry (tensorflow/cc/saved_model/loader.cc):
    # model_path (one folder per version), status "success" | "fail"; latency in µs.
    ":tensorflow:cc:saved_model:load_attempt_count",
    ":tensorflow:cc:saved_model:load_latency",
}
TF_SERVING_HISTOGRAMS = {
    # util.cc, microseconds: model_name, API (REST: predict, ...; gRPC: Predict, ...), entrypoint
    ":tensorflow:serving:request_latency",
    ":tensorflow:serving:runtime_latency",  # util.cc, µs: model_name, API, runtime
    ":tensorflow:serving:request_example_counts",  # util.cc: model
    ":tensorflow:serving:model_warmup_latency",  # saved_model_warmup_util.cc, µs
    # batching/batching_session.cc and batching_util.h ("batching_session" task):
    ":tensorflow:serving:batching_session:queuing_latency",  # µs: thread_pool_name
    ":tensorflow:serving:batching_session:input_batch_size",
    ":tensorflow:serving:batching_session:processed_batch_size",
    ":tensorflow:serving:batching_session:padding_size",  # execution_batch_size
}
# Series Prometheus writes for every target itself.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# How prometheus_client names the series of a family of each type.
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def tf_serving_series() -> set[str]:
    histograms = {
        f"{name}{suffix}"
        for name in TF_SERVING_HISTOGRAMS
        for suffix in SERIES_SUFFIXES["histogram"][:3]
    }
    return TF_SERVING_COUNTERS_AND_GAUGES | histograms


def gateway_series() -> set[str]:
    """Every series name the gateway's /metrics can carry, read from its metrics' registry."""
    from gateway.metrics import GatewayMetrics

    registry = GatewayMetrics().registry
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SERIES_SUFFIXES.get(family.type, ("",))
    }


# --- PromQL, just enough to find metric names in expressions promtool has parsed -----------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:(])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, labels and keywords left out)."""
    assert "__name__" not in expr, f"select metrics by name, not by __name__: {expr}"
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _CLAUSE.sub("", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        pytest.param("up", {"up"}, id="bare"),
        pytest.param(
            'sum by (route, status) (rate(gateway_requests_total{route="/predict"}[5m]))',
            {"gateway_requests_total"},
            id="aggregation",
        ),
        pytest.param(
            "histogram_quantile(0.99, sum by (le) (rate(:tensorflow:serving:request_latency_bucket"
            '{API=~"(?i)predict"}[$__rate_interval]))) / 1e6',
            {":tensorflow:serving:request_latency_bucket"},
            id="colons-and-numbers",
        ),
        pytest.param(
            "sum by (v) (rate(a_total[5m])) / ignoring (v) group_left () sum (rate(b_total[5m]"
            " offset 1h)) > bool 0 and on (job) up",
            {"a_total", "b_total", "up"},
            id="binary-operators",
        ),
        pytest.param(
            'label_replace(rate(x_total[1m]), "dst", "$1", "src", "(.*)")',
            {"x_total"},
            id="strings",
        ),
    ],
)
def test_metric_names_finds_every_selector(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# --- The dashboard ------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    """(where, expr) for every PromQL expression: panel targets and annotations."""
    found = [(panel["title"], target["expr"]) for panel in panels() for target in panel["targets"]]
    found += [
        (f"annotation {annotation['name']}", annotation["expr"])
        for annotation in dashboard()["annotations"]["list"]
        if "expr" in annotation
    ]
    return found


def test_dashboard_is_one_grafana_can_provision() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    (variable,) = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_names_only_metrics_the_gateway_or_tf_serving_exports() -> None:
    """Fails while the dashboard names a metric the gateway's registry does not define (the
    gateway's names are read from its code) or that TF Serving does not export."""
    exported = gateway_series() | tf_serving_series() | PROMETHEUS_SERIES
    unknown = {
        f"{where}: {name}"
        for where, expr in expressions()
        for name in metric_names(expr)
        if name not in exported
    }
    assert not unknown, "metrics nobody exports:\n" + "\n".join(sorted(unknown))


def test_dashboard_shows_what_operators_look_at() -> None:
    """Per-version traffic and latency, errors by kind, canary fallbacks, confidence and
    digits by version, feedback by digit, and TF Serving's own metrics."""
    used = {name for _, expr in expressions() for name in metric_names(expr)}
    assert {
        "gateway_upstream_duration_seconds_count",  # model calls by version and track
        "gateway_upstream_duration_seconds_bucket",  # latency quantiles by version
        "gateway_request_duration_seconds_bucket",
        "gateway_errors_total",
        "gateway_canary_fallbacks_total",
        "gateway_prediction_confidence_bucket",
        "gateway_predicted_digit_total",
        "gateway_feedback_total",
        ":tensorflow:serving:request_count",
        ":tensorflow:serving:request_latency_bucket",
        ":tensorflow:serving:batching_session:processed_batch_size_bucket",
        ":tensorflow:cc:saved_model:load_attempt_count",
    } <= used
    text = "\n".join(expr for _, expr in expressions())
    assert "histogram_quantile(0.99" in text and "by (le, model_version)" in text


# --- Prometheus and Grafana in the compose profile ------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Host path -> container path of a service's bind mounts, which must be read-only."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        if source.startswith("."):
            assert mode == ["ro"], f"{volume}: configuration is mounted read-only"
            found[source.removeprefix("./")] = target
    return found


def test_monitoring_profile_runs_beside_the_stack_untouched() -> None:
    services = compose()["services"]
    profiled = {name for name, service in services.items() if "profiles" in service}
    assert profiled == {"prometheus", "grafana"}
    for name in profiled:
        service = services[name]
        assert service["profiles"] == ["monitoring"], name
        image, _, tag = service["image"].partition(":")
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: pin a release tag"
        user = str(service["user"]).split(":")[0]
        assert user.isdigit() and int(user) > 0, f"{name} runs as a numeric non-root user"
        for port in service["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name}: publish on loopback only"
        assert service["healthcheck"]["test"][0] == "CMD", name


def test_prometheus_scrapes_the_compose_services_where_they_export() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {
        job["job_name"]: (job["static_configs"][0]["targets"], job.get("metrics_path", "/metrics"))
        for job in config["scrape_configs"]
    }
    monitoring = (ROOT / "serving/monitoring.config").read_text()
    (tf_path,) = re.findall(r'path: "([^"]+)"', monitoring)
    assert jobs == {
        "gateway": (["gateway:8000"], "/metrics"),
        "tf-serving": (["tf-serving:8501"], tf_path),
    }
    services = compose()["services"]
    assert services["gateway"]["ports"] == ["8000:8000"]
    assert "--rest_api_port=8501" in services["tf-serving"]["command"]
    prometheus = services["prometheus"]
    assert mounts(prometheus) == {"monitoring/prometheus.yml": "/etc/prometheus/prometheus.yml"}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_provisions_the_dashboard_and_prometheus() -> None:
    grafana = compose()["services"]["grafana"]
    mounted = mounts(grafana)
    assert mounted["monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    (datasources,) = (PROVISIONING / "datasources").glob("*.yaml")
    (source,) = yaml.safe_load(datasources.read_text())["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    assert "127.0.0.1:9090:9090" in compose()["services"]["prometheus"]["ports"]
    (providers,) = (PROVISIONING / "dashboards").glob("*.yaml")
    (provider,) = yaml.safe_load(providers.read_text())["providers"]
    assert provider["options"]["path"] == mounted["monitoring/grafana/dashboards"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
