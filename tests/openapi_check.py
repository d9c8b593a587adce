"""Print what is wrong with the served OpenAPI document, grouped by path.

    python -m tests.openapi_check [PATH-PREFIX]

Builds a throwaway seeded SQLite app (as the tests do), fetches
``/api/v1/_openapi`` as Admin, validates it with openapi-spec-validator and
lists every error; exit 1 when there is any. The test suite asserts the same
(``tests/test_openapi.py``); this is for finding them while working.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path


def served_spec(app) -> dict:
    from tests.conftest import DEMO_PASSWORD

    client = app.test_client()
    token = client.post(
        "/api/v1/security/login", json={"username": "admin", "password": DEMO_PASSWORD, "provider": "db"}
    ).get_json()["access_token"]
    answer = client.get("/api/v1/_openapi", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, f"/api/v1/_openapi answered {answer.status_code}"
    return answer.get_json()


def resolved(spec: dict, node: dict) -> dict:
    """``node``, or what its ``$ref`` ("#/components/parameters/pk") points to."""
    while "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def errors_of(spec: dict) -> list[str]:
    from openapi_spec_validator import OpenAPIV30SpecValidator

    out = []
    for err in OpenAPIV30SpecValidator(spec).iter_errors():
        where = "/".join(str(p) for p in err.absolute_path)
        out.append(f"{where}: {err.message.splitlines()[0][:300]}")
    return out


def main(prefix: str = "") -> int:
    from tests.conftest import build_app

    db = Path(tempfile.mkdtemp(prefix="openapi-")) / "platform.db"
    app = build_app(f"sqlite:///{db}", FAB_API_SWAGGER_UI=True)
    spec = served_spec(app)
    errors = [e for e in errors_of(spec) if e.startswith(f"paths/{prefix}") or not prefix]
    by_path = Counter(e.split(":")[0].rsplit("/", 2)[0] for e in errors)
    for e in errors:
        print(e)
    print(f"{len(errors)} errors", dict(by_path.most_common(20)) if errors else "")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*(a.replace("/", "~1") for a in sys.argv[1:2])))
