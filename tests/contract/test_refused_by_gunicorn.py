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


def test_a_body_over_the_limit_is_a_413_in_our_error_format(live):
    """Django refuses the body (DATA_UPLOAD_MAX_MEMORY_SIZE) without reading it; gunicorn still gets
    the answer to the client, and the schema's 413 is what arrives."""
    token = make_token(UserFactory())
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    for _ in range(3):  # and again: the worker that answered is still fine
        response = httpx.post(f"{live.url}/projects", content=body, headers=headers, timeout=30)
        assert response.status_code == 413, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["code"] == "request_too_large"
        assert response.json()["details"][0]["allowed"] == {"max": 2621440}
    assert httpx.get(f"{live.url}/projects", headers=headers).status_code == 200
