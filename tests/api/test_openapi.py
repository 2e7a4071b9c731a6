"""/openapi.json stays true: it describes exactly the app's routes, its schemas match real
responses, and schemathesis finds no input that reaches a server error."""

import re
from collections.abc import Iterator
from pathlib import Path

import falcon.inspect
import jsonschema
import pika
import pytest
import schemathesis
from falcon.testing import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from sample_people import API_TOKEN
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.console.pages import Page
from api.openapi import DOCUMENT
from shared.config import Settings
from shared.models import Run
from shared.pipeline import ABANDONED_NOTE

# Enough to cross every parameter's edges; keeps the whole run to seconds.
FUZZ_EXAMPLES = 20
# Operations no request can get wrong: no parameters, or any text may be a user id.
NOTHING_INVALID = {
    "GET /health",
    "GET /ready",
    "GET /metrics",
    "GET /openapi.json",
    "GET /data/{user_id}",
    "GET /data/{user_id}/image",
}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zipflow.db'}"


def test_document_is_valid_openapi_3_1(client: TestClient) -> None:
    served = client.simulate_get("/openapi.json")
    assert served.headers["content-type"] == "application/json; charset=utf-8"
    assert served.json == DOCUMENT
    validate(served.json)
    assert served.json["openapi"].startswith("3.1")


def app_operations(app: falcon.App) -> set[tuple[str, str]]:
    """The JSON API's operations: the console's HTML pages are for people, not in the document."""
    operations = set()
    for route in falcon.inspect.inspect_routes(app):
        if route.class_name == Page.__name__:
            continue
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.path)
        operations.update(
            (path, method.method.lower()) for method in route.methods if not method.internal
        )
    return operations


def test_document_describes_every_route_and_nothing_else(client: TestClient) -> None:
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert app_operations(client.app) == documented


def test_every_operation_takes_exactly_its_documented_query_parameters(
    client: TestClient,
) -> None:
    """Documented parameters are accepted and the first other one is refused, wherever it is."""
    for path, item in DOCUMENT["paths"].items():
        url = path.replace("{user_id}", "1").replace("{run_id}", "1")
        for method, operation in item.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            query = "&".join(f"{name}=1" for name in [*names, "undocumented"])
            result = client.simulate_request(method.upper(), url, query_string=query)
            assert result.status_code == 400, (method, path)
            assert result.json["parameter"] == "undocumented", (method, path)
            conforms(result, path, method)


def conforms(result, path: str, method: str = "get") -> None:
    """The response body validates against the schema the document gives for its status."""
    response = DOCUMENT["paths"][path][method]["responses"][str(result.status_code)]
    schema = response["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(
        result.json
    )


def test_real_responses_match_their_schemas(client: TestClient) -> None:
    conforms(client.simulate_get("/data"), "/data")
    conforms(client.simulate_get("/data", query_string="limit=2&min_age=20"), "/data")
    conforms(client.simulate_get("/data", query_string="min_age=abc"), "/data")
    conforms(client.simulate_get("/data/1"), "/data/{user_id}")
    conforms(client.simulate_get("/data/nobody"), "/data/{user_id}")
    conforms(client.simulate_get("/stats"), "/stats")
    conforms(client.simulate_get("/stats", query_string="min_age=99"), "/stats")
    conforms(client.simulate_get("/stats/ages", query_string="q=a"), "/stats/ages")
    conforms(client.simulate_get("/stats/ages", query_string="q="), "/stats/ages")
    runs = client.simulate_get("/runs")
    conforms(runs, "/runs")
    conforms(client.simulate_get(f"/runs/{runs.json[0]['id']}"), "/runs/{run_id}")
    conforms(client.simulate_get("/health"), "/health")
    conforms(client.simulate_get("/ready"), "/ready")
    conforms(
        client.simulate_post("/data", body=b"x", headers={"Content-Type": "text/plain"}),
        "/data",
        "post",
    )


def test_an_abandoned_run_is_served_as_its_schema_says(client: TestClient) -> None:
    # A worker that died mid-load leaves its run "abandoned" (worker.handler, shared.pipeline).
    run = Run.create(source="source/a.zip", status="abandoned", note=ABANDONED_NOTE)
    served = client.simulate_get(f"/runs/{run.id}")
    conforms(served, "/runs/{run_id}")
    assert (served.json["status"], served.json["note"]) == ("abandoned", ABANDONED_NOTE)


def test_schemas_reject_what_they_should(client: TestClient) -> None:
    """The schema check above would prove nothing if the schemas accepted anything."""
    user = client.simulate_get("/data/1").json
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(
            {**DOCUMENT["components"]["schemas"]["User"], "components": DOCUMENT["components"]}
        ).validate({**user, "age": "26"})


@pytest.fixture
def fuzz_app(
    settings: Settings, loaded, make_client, token_settings: Settings
) -> Iterator[falcon.App]:
    """The app on a loaded store, with a token and the worker queue declared on the real broker."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    channel.queue_declare(settings.queue, durable=True)
    yield make_client(app_settings=token_settings).app
    channel.queue_delete(settings.queue)
    connection.close()


def cross_parameter_rules(case: schemathesis.Case) -> list:
    """min_age above max_age is refused by design, a rule OpenAPI cannot state per parameter."""
    query = case.query or {}
    ages = query.get("min_age"), query.get("max_age")
    if all(isinstance(age, int) for age in ages) and ages[0] > ages[1]:
        return [positive_data_acceptance]
    return []


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_input_reaches_a_server_error(fuzz_app: falcon.App, mode: GenerationMode) -> None:
    """Generated requests for every operation, valid ones and invalid ones, checked by
    schemathesis: no 5xx, and status, headers and bodies as the document says."""
    api = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    for result in api.get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and operation.label in NOTHING_INVALID:
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                excluded_checks=cross_parameter_rules(case),
            )

        check()
