"""The API's contract: `/api/v1/_openapi` is served, valid, and holds up under a bounded fuzz.

Swagger UI (`/swagger/v1`) is for administrators only. The document passes
openapi-spec-validator, and schemathesis calls every operation it declares with
a few generated requests, as a query clerk, as a notification operator and as Admin, on a
throwaway database: no request may end in a server error (5xx).
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import Database, api_token, bearer, build_app, login
from tests.openapi_check import errors_of, served_spec

# Generated requests per operation and per user: enough to hit every declared
# parameter and body with a few shapes, while the whole run stays around a minute.
EXAMPLES_PER_OPERATION = 6


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory):
    """A seeded throwaway SQLite platform that the fuzzing may damage at will."""
    from app.extensions import db

    database = Database("sqlite", tmp_path_factory.mktemp("openapi"))
    application = build_app(database.url, FAB_API_SWAGGER_UI=True)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    database.drop()


def test_the_openapi_document_is_served_to_an_administrator(contract_app):
    spec = served_spec(contract_app)
    assert spec["openapi"].startswith("3.")
    assert any(path.startswith("/api/v1/") for path in spec["paths"])


def test_swagger_ui_is_for_administrators_only(contract_app):
    admin = contract_app.test_client()
    login(admin, "admin")
    page = admin.get("/swagger/v1")
    assert page.status_code == 200
    assert "/api/v1/_openapi" in page.text

    clerk = contract_app.test_client()
    login(clerk, "clerk")
    refused = clerk.get("/swagger/v1")
    assert refused.status_code in (302, 403)
    assert refused.status_code == 403 or "/swagger" not in refused.headers.get("Location", "")

    anonymous = contract_app.test_client().get("/swagger/v1")
    assert anonymous.status_code in (302, 401, 403)


def test_a_clerk_cannot_read_the_openapi_document(contract_app):
    client = contract_app.test_client()
    answer = client.get("/api/v1/_openapi", headers=bearer(api_token(client, "clerk")))
    assert answer.status_code in (401, 403)


def test_the_openapi_document_passes_the_openapi_validator(contract_app):
    assert errors_of(served_spec(contract_app)) == []


def _fuzz(app, spec: dict, username: str) -> tuple[int, int, list[str]]:
    """Call every operation with a few generated requests as ``username``.

    Returns (operations run, requests sent, server errors as "METHOD path -> status").
    A request the app fails to answer at all (an exception escaping the app) is a
    server error too. An operation schemathesis cannot read or generate for is
    reported (printed) but is not a server error: the validator test covers it.
    """
    import schemathesis

    schema = schemathesis.openapi.from_dict(spec)
    client = app.test_client()
    headers = bearer(api_token(client, username))
    counts = {"operations": 0, "cases": 0, "statuses": Counter()}
    failures: list[str] = []
    skipped: list[str] = []

    for result in schema.get_all_operations():
        try:
            operation = result.ok()
        except Exception as exc:
            skipped.append(f"unreadable operation: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        label = f"{operation.method.upper()} {operation.path}"
        counts["operations"] += 1
        try:
            _calls(app, operation, headers, label, counts, failures)()
        except Exception as exc:  # generation trouble, not an answer of the app
            skipped.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    for line in skipped:
        print("schemathesis skipped", line)
    print(f"schemathesis as {username}: answers by status {dict(sorted(counts['statuses'].items()))}")
    return counts["operations"], counts["cases"], sorted(set(failures))


def _calls(app, operation, headers, label, counts, failures):
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def call(case):
        counts["cases"] += 1
        try:
            response = case.call(app=app, headers=headers)
        except Exception as exc:  # the app did not answer: a server error
            failures.append(f"{label} -> {type(exc).__name__}")
            return
        counts["statuses"][response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{label} -> {response.status_code}")

    return call


@pytest.mark.parametrize("username", ["clerk", "notifier", "admin"])
def test_no_generated_request_gets_a_server_error(contract_app, username):
    """Schemathesis, bounded: every declared operation, a few requests each, zero 5xx."""
    spec = served_spec(contract_app)
    operations, cases, failures = _fuzz(contract_app, spec, username)
    print(f"schemathesis as {username}: {operations} operations, {cases} requests, {len(failures)} failing")
    assert operations > 0 and cases >= operations
    assert failures == [], "server errors:\n" + "\n".join(failures)
