"""infra/compose.yml: valid Compose, and MinIO's AMQP target agrees with what the worker declares.

MinIO declares the events exchange on every publish with its own type and durability; if
they differ from the worker's declaration RabbitMQ refuses one of them, and if the URL
points elsewhere the events never arrive. Both sides are read here, compose from the file
and the worker from `shared.config.Settings`, under the development defaults and under
the values of .env.example, so a change on either side that breaks the pair fails a test.
"""

import copy
import ipaddress
import posixpath
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pika
import pytest
from infra_support import (
    COMPOSE,
    ENV_EXAMPLE,
    INFRA_ENV,
    active_services,
    compose_defaults,
    compose_profiles,
    compose_variables,
    interpolate,
    network_names,
    read_env_file,
    run,
    service_environment,
    tool,
)

from shared.config import Settings
from shared.db import POSTGRES_SCHEMES
from zipflow.cli import build_parser

MINIO_QUEUE_LIMIT = 100_000  # internal/store/queuestore.go defaultLimit
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
MC_IMAGE = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"
TARGET_ID = "PRIMARY"
NOTIFY_PREFIX = "MINIO_NOTIFY_AMQP_"
# MinIO reads these as on/off only; "true" or a YAML boolean silently means off.
FLAGS = ("ENABLE", "DURABLE", "PUBLISHING_CONFIRMS")
LONG_RUNNING = ("rabbitmq", "minio", "worker", "api", "worker-postgres", "api-postgres", "postgres")
# Read by compose itself rather than interpolated into the file.
COMPOSE_SETTINGS = {"COMPOSE_PROFILES"}
ONE_SHOT = ("demo-data", "init")


def on_off(flag: bool) -> str:
    return "on" if flag else "off"


def app_settings(compose: dict[str, Any], service: str, env: Mapping[str, str]) -> Settings:
    """The settings a zipflow process in `service` would build from its environment."""
    environment = service_environment(compose, service, env)
    return Settings.from_env({name: str(value) for name, value in environment.items()})


def amqp_endpoint(url: str) -> tuple[str, int, str, str, str]:
    """Where an AMQP URL leads and as whom, parsed by the client library the worker uses."""
    parameters = pika.URLParameters(url)
    credentials = parameters.credentials
    return (
        parameters.host,
        parameters.port,
        parameters.virtual_host,
        credentials.username,
        credentials.password,
    )


def notification_problems(compose: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """Every way MinIO's AMQP target in `compose` disagrees with the worker or RabbitMQ."""
    minio = service_environment(compose, "minio", env)
    rabbitmq = service_environment(compose, "rabbitmq", env)
    worker = app_settings(compose, "worker", env)
    defaults = Settings()
    notify = {
        name.removeprefix(NOTIFY_PREFIX).removesuffix(f"_{TARGET_ID}"): value
        for name, value in minio.items()
        if name.startswith(NOTIFY_PREFIX)
    }
    problems = [
        f"{NOTIFY_PREFIX}{name}_{TARGET_ID} is a YAML {type(notify[name]).__name__}: quote it"
        for name in notify
        if not isinstance(notify[name], str)
    ]
    problems += [
        f"{name} is not a setting of target {TARGET_ID}"
        for name in minio
        if name.startswith(NOTIFY_PREFIX) and not name.endswith(f"_{TARGET_ID}")
    ]
    expected = {
        "ENABLE": "on",
        "EXCHANGE": worker.exchange,
        "EXCHANGE_TYPE": worker.exchange_type,
        "DURABLE": on_off(worker.exchange_durable),
        "ROUTING_KEY": worker.routing_key,
        "DELIVERY_MODE": "2",
        "PUBLISHING_CONFIRMS": "on",
        "QUEUE_LIMIT": str(MINIO_QUEUE_LIMIT),
    }
    for name, value in expected.items():
        if notify.get(name) != value:
            problems.append(
                f"{NOTIFY_PREFIX}{name}_{TARGET_ID} is {notify.get(name)!r}, not {value!r}"
            )
    for name in FLAGS:
        if notify.get(name) not in ("on", "off"):
            problems.append(f"{NOTIFY_PREFIX}{name}_{TARGET_ID} must be on or off")
    if minio.get("MINIO_API_SYNC_EVENTS") != "on":
        problems.append(
            f"MINIO_API_SYNC_EVENTS is {minio.get('MINIO_API_SYNC_EVENTS')!r}, not 'on': "
            "an acknowledged upload's event could be dropped from MinIO's memory"
        )
    topology = ("exchange", "exchange_type", "exchange_durable", "routing_key", "queue")
    if [getattr(worker, name) for name in topology] != [
        getattr(defaults, name) for name in topology
    ]:
        problems.append("compose overrides the worker's default exchange or queue")
    if "ZIPFLOW_ROUTING_KEY" not in service_environment(compose, "worker", env):
        problems.append("compose does not name the worker's ZIPFLOW_ROUTING_KEY beside MinIO's")

    unchecked = set(notify) - set(expected) - {"URL", "QUEUE_DIR"}
    problems += [f"{NOTIFY_PREFIX}{name}_{TARGET_ID} is not checked here" for name in unchecked]

    broker = (
        "rabbitmq",
        5672,
        "/",
        rabbitmq.get("RABBITMQ_DEFAULT_USER"),
        rabbitmq.get("RABBITMQ_DEFAULT_PASS"),
    )
    if "URL" not in notify:
        problems.append(f"{NOTIFY_PREFIX}URL_{TARGET_ID} is missing")
    elif amqp_endpoint(notify["URL"]) != broker:
        problems.append(f"MinIO publishes to {amqp_endpoint(notify['URL'])}, not {broker}")
    if amqp_endpoint(worker.amqp_url) != broker:
        problems.append(f"the worker consumes from {amqp_endpoint(worker.amqp_url)}, not {broker}")

    queue_dir = notify.get("QUEUE_DIR")
    mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in compose["services"]["minio"].get("volumes", [])
    }
    data_dir = compose["services"]["minio"]["command"][1]
    if queue_dir not in mounts or mounts[queue_dir] not in compose.get("volumes", {}):
        problems.append(f"the event queue dir {queue_dir!r} is not on a volume of its own")
    elif posixpath.commonpath([queue_dir, data_dir]) == data_dir:
        problems.append(f"the event queue dir {queue_dir!r} lies inside MinIO's data {data_dir!r}")
    return problems


@pytest.fixture(params=["development defaults", ".env.example"])
def env(request: pytest.FixtureRequest, example_env: dict[str, str]) -> dict[str, str]:
    """Resolve compose once as the quickstart does and once as a deployment with a .env does."""
    return {} if request.param == "development defaults" else example_env


def test_compose_file_follows_the_compose_specification() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_misspelt_key(tmp_path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text(COMPOSE.read_text().replace("healthcheck:", "healthchek:", 1))
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", broken)
    assert result.returncode != 0
    assert "healthchek" in result.stdout


def test_minio_notification_target_matches_the_worker(compose, env) -> None:
    assert notification_problems(compose, env) == []


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("MINIO_NOTIFY_AMQP_DURABLE_PRIMARY", "true", "DURABLE_PRIMARY is 'true', not 'on'"),
        ("MINIO_NOTIFY_AMQP_DURABLE_PRIMARY", True, "is a YAML bool: quote it"),
        ("MINIO_NOTIFY_AMQP_ENABLE_PRIMARY", "off", "ENABLE_PRIMARY is 'off', not 'on'"),
        ("MINIO_NOTIFY_AMQP_EXCHANGE_PRIMARY", "events", "EXCHANGE_PRIMARY is 'events'"),
        ("MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_PRIMARY", "topic", "EXCHANGE_TYPE_PRIMARY is 'topic'"),
        ("MINIO_NOTIFY_AMQP_DELIVERY_MODE_PRIMARY", "1", "DELIVERY_MODE_PRIMARY is '1'"),
        ("MINIO_NOTIFY_AMQP_PUBLISHING_CONFIRMS_PRIMARY", None, "PUBLISHING_CONFIRMS_PRIMARY is"),
        (
            "MINIO_NOTIFY_AMQP_URL_PRIMARY",
            "amqp://guest:guest@rabbitmq:5672/%2F",
            "MinIO publishes",
        ),
        (
            "MINIO_NOTIFY_AMQP_URL_PRIMARY",
            "amqp://zipflow:x@rabbitmq:5672/other",
            "MinIO publishes",
        ),
        ("MINIO_NOTIFY_AMQP_QUEUE_DIR_PRIMARY", "/data/events", "not on a volume of its own"),
        ("MINIO_NOTIFY_AMQP_QUEUE_DIR_PRIMARY", "/data", "lies inside MinIO's data"),
        (
            "MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY",
            "objects",
            "ROUTING_KEY_PRIMARY is 'objects', not ''",
        ),
        ("MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY", None, "ROUTING_KEY_PRIMARY is None, not ''"),
        ("MINIO_NOTIFY_AMQP_QUEUE_LIMIT_PRIMARY", "500", "QUEUE_LIMIT_PRIMARY is '500'"),
        ("MINIO_NOTIFY_AMQP_MANDATORY_PRIMARY", "on", "is not checked here"),
        ("MINIO_API_SYNC_EVENTS", None, "MINIO_API_SYNC_EVENTS is None, not 'on'"),
        ("MINIO_API_SYNC_EVENTS", "off", "MINIO_API_SYNC_EVENTS is 'off', not 'on'"),
        ("MINIO_NOTIFY_AMQP_ENABLE_SECONDARY", "on", "is not a setting of target PRIMARY"),
    ],
)
def test_a_mismatch_in_minio_settings_is_caught(compose, variable, value, complaint) -> None:
    broken = copy.deepcopy(compose)
    environment = broken["services"]["minio"]["environment"]
    if value is None:
        del environment[variable]
    else:
        environment[variable] = value
    assert any(complaint in problem for problem in notification_problems(broken, {}))


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("ZIPFLOW_EXCHANGE_TYPE", "topic", "EXCHANGE_TYPE_PRIMARY is 'fanout', not 'topic'"),
        ("ZIPFLOW_EXCHANGE_DURABLE", "false", "DURABLE_PRIMARY is 'on', not 'off'"),
        ("ZIPFLOW_QUEUE", "elsewhere", "overrides the worker's default exchange or queue"),
        ("ZIPFLOW_ROUTING_KEY", "objects", "ROUTING_KEY_PRIMARY is '', not 'objects'"),
        ("ZIPFLOW_AMQP_URL", "amqp://zipflow:x@localhost:5672/%2F", "the worker consumes from"),
    ],
)
def test_a_mismatch_in_worker_settings_is_caught(compose, variable, value, complaint) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["environment"] = {
        **broken["services"]["worker"]["environment"],
        variable: value,
    }
    assert any(complaint in problem for problem in notification_problems(broken, {}))


def test_the_worker_names_its_routing_key_beside_minios(compose) -> None:
    broken = copy.deepcopy(compose)
    for service in ("worker", "api"):
        environment = dict(broken["services"][service]["environment"])
        del environment["ZIPFLOW_ROUTING_KEY"]
        broken["services"][service]["environment"] = environment
    assert any("ZIPFLOW_ROUTING_KEY" in problem for problem in notification_problems(broken, {}))


def rabbitmq_settings(compose: dict[str, Any]) -> dict[str, str]:
    """The settings of the rabbitmq.conf files compose mounts into RabbitMQ's conf.d."""
    settings = {}
    for volume in compose["services"]["rabbitmq"]["volumes"]:
        source, target, *_ = volume.split(":")
        if target.startswith("/etc/rabbitmq/conf.d/"):
            for line in (COMPOSE.parent / source).read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    name, _, value = line.partition("=")
                    settings[name.strip()] = value.strip()
    return settings


def test_rabbitmq_lets_a_long_load_hold_its_delivery(compose) -> None:
    # RabbitMQ's default of 30 minutes is shorter than the largest loads (docs/worker.md).
    timeout_ms = int(rabbitmq_settings(compose)["consumer_timeout"])
    assert timeout_ms >= 4 * 3600 * 1000


def test_worker_and_api_run_one_image_with_one_configuration(compose, env) -> None:
    worker, api = compose["services"]["worker"], compose["services"]["api"]
    assert worker["image"] == api["image"] == compose["services"]["demo-data"]["image"]
    assert worker["build"] == api["build"]
    assert worker["build"]["context"] == ".."
    assert app_settings(compose, "worker", env) == app_settings(compose, "api", env)


def test_the_sqlite_file_lives_on_the_volume_both_processes_mount(compose, env) -> None:
    settings = app_settings(compose, "worker", env)
    path = settings.database_url.removeprefix("sqlite:///")
    assert path != settings.database_url, "the stack's default store is a SQLite file"
    for service in ("worker", "api"):
        mounts = [volume.split(":") for volume in compose["services"][service]["volumes"]]
        assert any(
            source in compose["volumes"] and path.startswith(target + "/")
            for source, target, *_ in mounts
        ), f"{service} does not mount a named volume holding {path}"


def test_object_storage_settings_agree_everywhere(compose, env) -> None:
    settings = app_settings(compose, "worker", env)
    minio = service_environment(compose, "minio", env)
    init = service_environment(compose, "init", env)
    assert settings.s3_endpoint == "minio:9000"
    assert init["MINIO_URL"] == "http://minio:9000"
    assert (settings.s3_access_key, settings.s3_secret_key) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert (init["MINIO_ROOT_USER"], init["MINIO_ROOT_PASSWORD"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert (init["SOURCE_BUCKET"], init["PROCESSED_BUCKET"]) == (
        settings.source_bucket,
        settings.processed_bucket,
    )
    assert init["NOTIFY_ARN"] == f"arn:minio:sqs::{TARGET_ID}:amqp"


def test_minio_images_are_pinned_to_the_archived_releases(compose) -> None:
    services = compose["services"]
    assert services["minio"]["image"] == MINIO_IMAGE
    assert services["init"]["image"] == MC_IMAGE
    assert services["rabbitmq"]["image"] == "rabbitmq:4-management"
    assert services["minio"]["command"] == ["server", "/data", "--console-address", ":9001"]


def test_long_running_services_have_healthchecks_and_restart(compose) -> None:
    for name in LONG_RUNNING:
        service = compose["services"][name]
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name
    for name in ONE_SHOT:
        assert compose["services"][name]["restart"] == "no", name
    api_check = " ".join(compose["services"]["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/health" in api_check
    minio_check = compose["services"]["minio"]["healthcheck"]["test"]
    assert "http://localhost:9000/minio/health/live" in minio_check


def test_init_runs_after_the_worker_has_declared_its_queue(compose) -> None:
    depends = compose["services"]["init"]["depends_on"]
    for worker in ("worker", "worker-postgres"):
        assert depends[worker] == {"condition": "service_healthy", "required": False}
    assert depends["minio"]["condition"] == "service_healthy"
    assert depends["demo-data"]["condition"] == "service_completed_successfully"


def test_init_runs_the_mounted_notification_script(compose) -> None:
    init = compose["services"]["init"]
    script_in_container = init["entrypoint"][-1]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in init["volumes"]}
    source = mounts[script_in_container]
    assert (COMPOSE.parent / source).resolve() == (COMPOSE.parent / "minio-notify.sh").resolve()
    demo_archive = service_environment(compose, "init", {})["DEMO_ARCHIVE"]
    demo_volume = mounts[posixpath.dirname(demo_archive)]
    demo_data = compose["services"]["demo-data"]
    assert f"{demo_volume}:{posixpath.dirname(demo_archive)}" in demo_data["volumes"]
    assert demo_archive in demo_data["command"]


def test_every_variable_compose_reads_is_in_env_example(compose, example_env) -> None:
    assert compose_variables(compose) == set(example_env) - COMPOSE_SETTINGS


def test_env_example_changes_every_development_default(compose, example_env) -> None:
    defaults = compose_defaults(compose)
    for name, value in example_env.items():
        if name in COMPOSE_SETTINGS:
            continue
        assert value, f"{name} is empty in {ENV_EXAMPLE.name}: compose would use its dev default"
        assert value != defaults[name], f"{name}'s example is its development default"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "y"}, "y"),
        ("$A/$${B}", {"A": "a"}, "a/${B}"),
    ],
)
def test_interpolation_follows_compose_rules(text, env, expected) -> None:
    assert interpolate(text, env) == expected


def test_app_commands_and_healthchecks_are_real_zipflow_commands(compose) -> None:
    """The image's entrypoint is `zipflow`: every command compose gives it must parse."""
    parser = build_parser()
    services = compose["services"]
    for name in ("worker", "api", "demo-data"):
        parser.parse_args(services[name]["command"])
    worker_check = services["worker"]["healthcheck"]["test"]
    assert worker_check[:2] == ["CMD", "zipflow"]
    parser.parse_args(worker_check[2:])


def test_api_listens_where_compose_publishes_and_probes_it(compose) -> None:
    api = compose["services"]["api"]
    args = build_parser().parse_args(api["command"])
    assert ipaddress.ip_address(args.host).is_unspecified, "reachable from the published port"
    assert [f"127.0.0.1:{args.port}:{args.port}"] == api["ports"]
    assert f"http://127.0.0.1:{args.port}/health" in " ".join(api["healthcheck"]["test"])


# The ways to start the stack the README and compose.yml give: which env file compose reads
# (infra/.env unless --env-file names one) and the --profile flags.
STARTS = {
    "up": ("infra/.env", []),
    "--env-file .env up": (".env.example", []),
    "--profile postgres up": ("infra/.env", ["postgres"]),
    "--env-file .env --profile postgres up": (".env.example", ["postgres"]),
}
PAIRS = {"sqlite": ("worker", "api"), "postgres": ("worker-postgres", "api-postgres")}


@pytest.fixture(params=list(STARTS))
def start(request, compose, example_env) -> tuple[dict[str, str], list[str]]:
    """The environment compose interpolates with and the profiles it runs, for one start."""
    env_file, flags = STARTS[request.param]
    env = read_env_file(INFRA_ENV) if env_file == "infra/.env" else example_env
    return env, compose_profiles(flags, env)


def test_infra_env_and_env_example_choose_the_sqlite_pair(example_env) -> None:
    assert read_env_file(INFRA_ENV) == {"COMPOSE_PROFILES": "sqlite"}
    assert example_env["COMPOSE_PROFILES"] == "sqlite"


def test_the_store_profiles_are_the_pairs_and_the_database(compose) -> None:
    profiled = {
        name: service["profiles"]
        for name, service in compose["services"].items()
        if "profiles" in service
    }
    assert profiled == {
        "worker": ["sqlite"],
        "api": ["sqlite"],
        "worker-postgres": ["postgres"],
        "api-postgres": ["postgres"],
        "postgres": ["postgres"],
    }


def test_every_start_runs_one_worker_and_one_api_on_one_store(compose, start) -> None:
    env, profiles = start
    services = active_services(compose, profiles)
    (profile,) = profiles
    worker, api = PAIRS[profile]
    commands = {name: service.get("command", [])[:1] for name, service in services.items()}
    assert [name for name, command in commands.items() if command == ["worker"]] == [worker]
    assert [name for name, command in commands.items() if command == ["api"]] == [api]
    settings = app_settings(compose, worker, env)
    assert settings == app_settings(compose, api, env)
    if profile == "sqlite":
        assert settings.database_url.startswith("sqlite:///")
        assert "postgres" not in services
    else:
        assert settings.database_url.startswith(POSTGRES_SCHEMES)
        assert "postgres" in services


def test_under_the_postgres_profile_the_pair_uses_the_postgres_service(compose, env) -> None:
    url = urlsplit(app_settings(compose, "worker-postgres", env).database_url)
    postgres = service_environment(compose, "postgres", env)
    assert (url.hostname, url.port, url.username, url.password, url.path) == (
        "postgres",
        5432,
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )


def test_every_dependency_runs_or_is_optional(compose, start) -> None:
    """compose-go's validation: a dependency on a service its profile leaves out must be
    `required: false`, or compose refuses the file ("depends on undefined service")."""
    services = active_services(compose, start[1])
    for name, service in services.items():
        for dependency, wait in service.get("depends_on", {}).items():
            assert dependency in compose["services"], f"{name} waits for unknown {dependency}"
            assert dependency in services or wait.get("required") is False, (name, dependency)


def test_the_pairs_differ_only_in_their_store_and_what_they_wait_for(compose, env) -> None:
    services = compose["services"]
    for sqlite, postgres in zip(PAIRS["sqlite"], PAIRS["postgres"], strict=True):
        left, right = dict(services[sqlite]), dict(services[postgres])
        for key in ("profiles", "environment", "networks", "depends_on"):
            left.pop(key, None)
            right.pop(key, None)
        assert left == right, (sqlite, postgres)
        left_env = service_environment(compose, sqlite, env)
        right_env = service_environment(compose, postgres, env)
        assert left_env.pop("ZIPFLOW_DATABASE_URL") != right_env.pop("ZIPFLOW_DATABASE_URL")
        assert left_env == right_env


def test_the_postgres_pair_answers_to_the_default_pairs_names(compose) -> None:
    for profile in PAIRS:
        names = network_names(active_services(compose, [profile]))
        assert names["worker"] == [PAIRS[profile][0]], profile
        assert names["api"] == [PAIRS[profile][1]], profile


def test_only_the_postgres_pair_waits_for_postgres(compose) -> None:
    services = compose["services"]
    for name in PAIRS["postgres"]:
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in PAIRS["sqlite"]:
        assert "postgres" not in services[name]["depends_on"], name
    assert services["api-postgres"]["depends_on"]["worker-postgres"] == {
        "condition": "service_healthy"
    }


def test_postgres_is_pinned_checked_and_keeps_its_data_on_its_own_volume(compose) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:\d+\.\d+-[a-z]+", postgres["image"]), "pin a minor release"
    environment = service_environment(compose, "postgres", {})
    check = postgres["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"]
    assert environment["POSTGRES_USER"] in check and environment["POSTGRES_DB"] in check
    (volume,) = postgres["volumes"]
    source, target = volume.split(":")
    assert target == "/var/lib/postgresql/data" and source in compose["volumes"]
    others = [
        mount.split(":")[0]
        for name, service in services.items()
        if name != "postgres"
        for mount in service.get("volumes", [])
    ]
    assert source not in others
