"""The Prometheus side of the stack, checked by Prometheus's own promtool: the scrape
configuration, the alert rules and their unit tests, and that they fit the compose file."""

import ipaddress
import re
import subprocess
from pathlib import Path

import yaml
from infra_support import COMPOSE, ROOT

from shared.config import Settings
from zipflow.cli import build_parser

PROMETHEUS = ROOT / "infra" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
ALERTS = PROMETHEUS / "alerts.yml"
RULE_TESTS = Path(__file__).parent / "prometheus" / "alerts_test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
# The issue's list: worker down or no consumer, dead letters, source lag, no success while
# zips wait, API errors, store unavailable.
REQUIRED_ALERTS = {
    "ZipflowWorkerDown",
    "ZipflowNoActiveConsumer",
    "ZipflowDeadLetters",
    "ZipflowSourceLag",
    "ZipflowNoRecentSuccess",
    "ZipflowApiErrors",
    "ZipflowStoreUnavailable",
}


def promtool_run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def scrape_targets() -> dict[str, list[str]]:
    config = yaml.safe_load(CONFIG.read_text())
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


def test_promtool_accepts_the_configuration(promtool: str) -> None:
    checked = promtool_run(promtool, "check", "config", CONFIG)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_promtool_accepts_the_rules(promtool: str) -> None:
    checked = promtool_run(promtool, "check", "rules", ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_pass_their_unit_tests(promtool: str) -> None:
    checked = promtool_run(promtool, "test", "rules", RULE_TESTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert {"ZipflowSourceLag", "ZipflowDeadLetters"} <= tested


def test_a_wrong_expectation_fails_the_rule_tests(promtool: str, tmp_path: Path) -> None:
    """promtool test rules must be able to fail, or the test above proves nothing."""
    text = RULE_TESTS.read_text().replace("../../../infra/prometheus/alerts.yml", str(ALERTS))
    broken = tmp_path / "alerts_test.yml"
    broken.write_text(text.replace("eval_time: 12m", "eval_time: 4m", 1))
    assert promtool_run(promtool, "test", "rules", broken).returncode != 0


def test_every_alert_the_issue_lists_exists_with_a_runbook_that_exists() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    sections = {
        re.sub(r"[^\w\- ]", "", heading).lower().replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), re.MULTILINE)
    }
    for rule in rules:
        runbook = rule["annotations"]["runbook"]
        anchor = re.match(r"docs/operations\.md#([\w-]+)\. \S", runbook)
        assert anchor, (
            f"{rule['alert']}: the runbook must start with its section and say what to do"
        )
        assert anchor[1] == rule["alert"].lower(), rule["alert"]
        assert anchor[1] in sections, f"docs/operations.md has no section for {rule['alert']}"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_prometheus_scrapes_what_compose_runs(compose: dict) -> None:
    services = compose["services"]
    targets = scrape_targets()
    api_args = build_parser().parse_args(services["api"]["command"])
    assert targets["zipflow-api"] == [f"api:{api_args.port}"]
    worker_env = services["worker"].get("environment", {}) or {}
    port = worker_env.get("ZIPFLOW_WORKER_METRICS_PORT", Settings().worker_metrics_port)
    assert targets["zipflow-worker"] == [f"worker:{port}"]
    assert ipaddress.ip_address(worker_env["ZIPFLOW_WORKER_METRICS_HOST"]).is_unspecified
    assert targets["rabbitmq"] == targets["rabbitmq-queues"] == ["rabbitmq:15692"]


def test_rabbitmq_runs_its_prometheus_plugin(compose: dict) -> None:
    mounts = dict(
        reversed(volume.rsplit(":", 2)[:2]) for volume in compose["services"]["rabbitmq"]["volumes"]
    )
    plugins = (COMPOSE.parent / mounts["/etc/rabbitmq/enabled_plugins"]).read_text()
    assert "rabbitmq_prometheus" in plugins and "rabbitmq_management" in plugins


def test_the_prometheus_service_is_pinned_and_mounts_these_files(compose: dict) -> None:
    service = compose["services"]["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", service["image"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    assert "./prometheus:/etc/prometheus:ro" in service["volumes"]
    assert service["ports"] == ["127.0.0.1:9090:9090"]
    assert service["restart"] == "unless-stopped"
    assert "http://localhost:9090/-/ready" in service["healthcheck"]["test"]
