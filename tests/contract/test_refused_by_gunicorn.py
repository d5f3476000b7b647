"""Requests gunicorn refuses before Django sees them still answer in the API's error format, with the
status the schema documents on every operation."""

import httpx
import pytest

from tests.factories import UserFactory, make_token

pytestmark = pytest.mark.worker


def test_a_too_long_query_is_a_414_in_our_error_format(live):
    token = make_token(UserFactory())
    response = httpx.get(
        f"{live.url}/projects",
        params={"offset": "9" * 5000},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "error": "The request line is longer than this server accepts: shorten the query.",
        "code": "uri_too_long",
    }

    # The same server answers a normal request as before.
    assert httpx.get(f"{live.url}/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_too_large_header_is_a_431_in_our_error_format(live):
    response = httpx.get(f"{live.url}/projects", headers={"Idempotency-Key": "k" * 9000})
    assert response.status_code == 431
    assert response.json()["code"] == "headers_too_large"


def test_the_schema_documents_both_on_every_operation(live):
    schema = httpx.get(f"{live.url}/openapi.json").json()
    operations = [
        operation
        for path in schema["paths"].values()
        for method, operation in path.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert operations
    for operation in operations:
        for status in ("414", "431"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ApiError"}, operation["operationId"]
