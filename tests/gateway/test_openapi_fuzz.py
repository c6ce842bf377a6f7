"""Schemathesis fuzzes every documented operation: no 5xx, and every response matches
the documented schema (status codes, content types, headers, bodies). The gateway has an
API key, as documented by its security scheme: schemathesis sends it, and checks that
requests without it, or with a wrong one, are refused.

Schema-valid requests may still be refused (random bytes are not an image of a digit), so
the "positive data acceptance" check is left out, and for a /predict/batch body that holds
files "negative data rejection" too: a bad file there is answered in its own entry of a 200.
Feedback is on, in a temporary folder, so /feedback is fuzzed past its 404. Derandomized:
every run fuzzes the same cases."""

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gateway.config import Settings
from gateway.main import create_app
from tests.conftest import gateway_variables
from tests.gateway.conftest import FakeTFServing
from tests.gateway.helpers import httpx_send

API_KEY = "fuzz-key"
# Removed when the interpreter exits.
FEEDBACK_DIR = tempfile.TemporaryDirectory(prefix="fuzz-feedback-")
# Made on import, before any fixture runs: a developer's .env file and GATEWAY_* variables
# are kept out here.
with pytest.MonkeyPatch.context() as environment:
    for name in gateway_variables():
        environment.delenv(name)
    SETTINGS = Settings(
        _env_file=None,  # type: ignore[call-arg]
        tf_serving_url="http://tf-serving:8501",
        version_cache_s=0,
        feedback_dir=Path(FEEDBACK_DIR.name),
        api_keys=[API_KEY],
    )
app = create_app(SETTINGS, upstream=httpx_send(FakeTFServing()))
# The key for the APIKeyHeader scheme: schemathesis sends it, except where it tests auth.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"auth": {"openapi": {"APIKeyHeader": {"api_key": API_KEY}}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


def is_batch_of_uploads(case: schemathesis.Case) -> bool:
    """A multipart part is bytes whatever type the schema mutated it to: a "schema-violating"
    /predict/batch body that still holds files is a batch of uploads, which the contract
    answers file by file (200, an error entry for each unreadable one), not by refusing it."""
    return case.path == "/predict/batch" and isinstance(case.body, dict) and "files" in case.body


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_fuzz_openapi_no_server_errors_and_schema_conformance(case: schemathesis.Case) -> None:
    response = case.call()

    assert response.status_code < 500, response.text
    excluded = [schemathesis.checks.positive_data_acceptance]
    if is_batch_of_uploads(case):
        excluded.append(schemathesis.checks.negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded)


@pytest.mark.parametrize("path", ["/", "/healthz", "/model", "/feedback"])
def test_fuzz_smoke_paths_exist(path: str) -> None:
    assert path in schema.raw_schema["paths"]
