"""What the OpenAPI schema needs beyond what drf-spectacular reads from views: the error shape,
the Bearer security scheme, the standard error responses of each operation, strict request objects
and named enums.

The committed ``openapi.yaml`` is what this code generates (``make check`` compares them); the SDK
and fuzzer tests in ``tests/contract`` hold the server to it.
"""

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers

from config.api.conditional import PRECONDITION_DETAIL, PreconditionFailed
from config.api.errors import RequestTooLarge, error_body
from config.operations import gunicorn_errors


class QuotaDetailSerializer(serializers.Serializer):
    limit = serializers.CharField(
        help_text="`max_workspaces`, `max_vcpus`, `max_memory_mb` or `max_volume_gb`."
    )
    current = serializers.IntegerField(help_text="In use now.")
    requested = serializers.IntegerField(help_text="What this request would add.")
    maximum = serializers.IntegerField(help_text="The limit.")


class ErrorDetailSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True, help_text="Dotted path of the offending field, e.g. `hardware.memory_mb`."
    )
    code = serializers.CharField(
        help_text="Stable code, e.g. `memory_too_high`, `invalid_type`, `unknown_field`."
    )
    message = serializers.CharField()
    allowed = serializers.DictField(
        required=False,
        help_text="What would have been valid: `{min, max, step}` or `{choices: [...]}`.",
    )
    quota = QuotaDetailSerializer(
        required=False, help_text="Present on `quota_exceeded`: which limit, and by how much."
    )


@extend_schema_serializer(component_name="ApiError")  # "Error" is a reserved word in many SDK languages
class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A sentence for people.")
    code = serializers.CharField(help_text="A stable code for programs.")
    details = ErrorDetailSerializer(many=True, required=False, help_text="Present on validation errors.")


_DESCRIPTIONS = {
    400: "Invalid request: the body is not valid JSON, has an unknown field, a wrong type, or breaks a rule.",
    401: "Missing or invalid token (`not_authenticated`, `invalid_token`); carries `WWW-Authenticate: Bearer`.",
    403: "Visible, but not allowed: a read-only project member, or a quota (`quota_exceeded`).",
    404: "Does not exist, is not visible to you, or the id is not a UUID.",
    406: "The `Accept` header admits no JSON (`not_acceptable`): every answer is `application/json`.",
    409: "Conflicts with existing state, or a request with the same Idempotency-Key is still running.",
    412: "`If-Match` does not name the resource's current `ETag` (`precondition_failed`); nothing was changed.",
    413: "The body is over the server's limit (`request_too_large`); `details[0].allowed.max` is the limit in bytes.",
    415: "The body is not `application/json`.",
    422: "The Idempotency-Key was already used with a different request (`idempotency_key_reused`).",
    429: "Too many requests (`rate_limited`); retry after the `Retry-After` header's seconds.",
    414: "The request line (method, path and query) is over 4094 bytes (`uri_too_long`).",
    431: "A header is over 8190 bytes, or there are more than 100 headers (`headers_too_large`).",
}


def _validation_example(field: str, code: str, message: str, **extra) -> dict:
    return {
        "error": f"{field}: {message}",
        "code": "validation_error",
        "details": [{"field": field, "code": code, "message": message, **extra}],
    }


# Examples of 400s, in the words the server uses: the default one, and two for error_responses().
BAD_BODY = _validation_example(
    "nmae",
    "unknown_field",
    "Unknown field 'nmae'; known fields are: name, description, repo_url, default_branch.",
)
BAD_PAGE = _validation_example(
    "limit",
    "invalid_limit",
    "limit must be an integer between 1 and 1000; got '0'.",
    allowed={"min": 1, "max": 1000},
)
BAD_HARDWARE = _validation_example(
    "hardware.memory_mb",
    "memory_too_high",
    "memory_mb must be at most 2048 for 1 shared CPU; got 4096.",
    allowed={"min": 256, "max": 2048, "step": 256},
)
BAD_STATE = {
    "error": "Cannot start a workspace that is 'running'; start needs 'stopped' or 'error'.",
    "code": "invalid_state",
    "details": [
        {
            "field": "status",
            "code": "invalid_state",
            "message": "Cannot start a workspace that is 'running'; start needs 'stopped' or 'error'.",
            "allowed": {"choices": ["stopped", "error"]},
        }
    ],
}


def _request_too_large_example() -> dict:
    failed = RequestTooLarge.for_limit(2621440)  # Django's default DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_body(failed.message, failed.code, failed.details)


def _precondition_failed_example() -> dict:
    tag = '"3f1c9a0b7d2e4f5a8c6b1d0e9f7a2b3c"'
    failed = PreconditionFailed(details=[{**PRECONDITION_DETAIL, "allowed": {"etag": tag}}])
    return error_body(failed.message, failed.code, failed.details)


_EXAMPLES = {
    401: {"error": "The token is malformed.", "code": "invalid_token"},
    403: {
        "error": "Your role in this project is 'viewer', which may not manage workspaces.",
        "code": "permission_denied",
    },
    404: {"error": "Project not found.", "code": "not_found"},
    406: {"error": "Could not satisfy the request Accept header.", "code": "not_acceptable"},
    409: {"error": "You already have a project named 'my-app'.", "code": "project_name_taken"},
    412: _precondition_failed_example(),
    415: {
        "error": 'Unsupported media type "text/plain" in request. Send a JSON body with '
        "'Content-Type: application/json'.",
        "code": "unsupported_media_type",
    },
    422: {
        "error": "This Idempotency-Key was used with a different request; use a new key for a new request.",
        "code": "idempotency_key_reused",
    },
    429: {"error": "Request was throttled. Expected available in 12 seconds.", "code": "rate_limited"},
    413: _request_too_large_example(),
    414: gunicorn_errors.error_body(414, ""),
    431: gunicorn_errors.error_body(431, ""),
}


def error_responses(*statuses: int, bad_request: dict = BAD_BODY) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, in our error shape, each with an example (``bad_request``
    for the 400). Every authenticated operation is rate limited, so one that can answer 401 can
    answer 429 too. Any request can be refused for its size before it reaches the API
    (config/operations/gunicorn_errors.py): 414 and 431 are on every operation, and so is 406 (content
    negotiation runs before anything else, so an ``Accept`` without JSON is refused by every
    operation). An operation that reads a body
    (415: it takes one; 422: it honours an Idempotency-Key, which fingerprints the body) answers 413
    to one over ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""
    statuses = (*statuses, 406, 414, 431)
    if 415 in statuses or 422 in statuses:
        statuses = (*statuses, 413)
    if 401 in statuses:
        statuses = (*statuses, 429)
    examples = {**_EXAMPLES, 400: bad_request}
    return {
        status: OpenApiResponse(
            ErrorSerializer,
            description=_DESCRIPTIONS[status],
            examples=[OpenApiExample(f"Error{status}", value=examples[status], status_codes=[str(status)])],
        )
        for status in sorted(set(statuses))
    }


def uuid_path_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        type={"type": "string", "format": "uuid"},
        location=OpenApiParameter.PATH,
        description=description,
    )


class StrictObjectExtension(OpenApiSerializerExtension):
    """Request bodies parsed by a ``StrictSerializer`` reject unknown fields (``unknown_field``), so
    their schema says ``additionalProperties: false``: generated clients and fuzzers then know."""

    target_class = "config.api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema


class NamedEnum:
    """A string field that the schema shows as the named enum component ``enum_name``, whatever the
    field validates (the services check values and answer with their own codes and ``allowed``).

    Named here because drf-spectacular names enums after the field (``RoleEnum``), which collides
    when two fields share a name but not their values. Only for values fixed in the code: values a
    deployment configures are an ``OpenString``."""

    enum_name: str
    enum_values: list[str]
    enum_description: str


class _NamedEnumExtension(OpenApiSerializerFieldExtension):
    target_class = NamedEnum
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = {"type": "string", "enum": list(field.enum_values), "description": field.enum_description}
        return _component_ref(auto_schema, field.enum_name, schema)


class OpenString:
    """A string field whose allowed values the deployment configures (the hardware catalogue's CPU
    kinds): the schema shows it as the named string component ``schema_name``, with the default
    values as documented examples, never as an enum. The same schema is then true for every
    deployment, and a strict client does not fail on another deployment's values; the server says
    which values it accepts in a 400's ``details[].allowed.choices``."""

    schema_name: str
    default_values: list[str]
    schema_description: str


class _OpenStringExtension(OpenApiSerializerFieldExtension):
    target_class = OpenString
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = {
            "type": "string",
            "minLength": 1,
            "description": field.schema_description,
            "example": field.default_values[0],
        }
        return _component_ref(auto_schema, field.schema_name, schema)


def _component_ref(auto_schema, name: str, schema: dict) -> dict:
    """``schema`` registered once as the component ``name``; the reference to it."""
    component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema)
    auto_schema.registry.register_on_missing(component)
    return component.ref


class SchemaHints:
    """A field whose schema carries extra JSON Schema keywords (``schema={"pattern": ...}``) for rules
    the services enforce with their own error codes: generated clients and fuzzers see the rule, and
    the answer to breaking it stays the service's."""

    def __init__(self, *args, schema: dict | None = None, **kwargs):
        self.schema_hints = schema or {}
        super().__init__(*args, **kwargs)


class _SchemaHintsExtension(OpenApiSerializerFieldExtension):
    target_class = SchemaHints
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, **self.target.schema_hints}


# A value the server trims to nothing is blank: a name must hold something besides whitespace. Written
# out, because `\S` differs between Python (which also trims \x1c-\x1f) and ECMA regular expressions.
NOT_BLANK = {"pattern": r"[^\s\x1c-\x1f]"}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "BearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer wsk_...`. Make one with "
            "`python manage.py create_api_token EMAIL`.",
        }


__all__ = [
    "NOT_BLANK",
    "NamedEnum",
    "OpenString",
    "SchemaHints",
    "OpenApiExample",
    "error_responses",
    "inline_serializer",
    "uuid_path_parameter",
    "BearerTokenScheme",
]


# --- The schema-wide pass (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"], after drf-spectacular's own) ---

# Response headers the server really sends, as reusable components. ``required`` means every answer
# of that kind carries it; the others appear only sometimes (a next page, a replay).
RESPONSE_HEADERS = {
    "X-Request-ID": {
        "description": "The request's id, for support and logs: the caller's own `X-Request-ID` if it was "
        "1 to 128 plain characters, else one the server made. On every answer but the 414 and 431 "
        "that the HTTP server gives before the application sees the request.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "The path of the resource this request created.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'Where the next page starts, `<path?limit=...&offset=...>; rel="next"`; absent on '
        "the last page.",
        "required": False,
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": 'The scheme to authenticate with: `Bearer`, with `error="invalid_token"` when a token '
        "was sent and refused.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same "
        "`Idempotency-Key`, sent again; nothing was done this time. Absent otherwise.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    },
    "ETag": {
        "description": "The entity tag of the resource as answered. Send it back in `If-Match` on a write "
        "to make it apply only if nobody changed the resource since.",
        "required": True,
        "schema": {"type": "string"},
    },
}

# Answers the HTTP server (gunicorn) gives before the request reaches Django: none of our headers.
_BEFORE_THE_APPLICATION = {"414", "431"}
# Answers an Idempotency-Key can replay: whatever the handler itself answered (config/api/idempotency.py
# stores all but 5xx and 429; 401, 413, 415, 422 and a malformed key are refused before the handler).
_REPLAYABLE_ERRORS = {"400", "403", "404", "409", "412"}
# POST actions whose 200 is the state of one resource (the others answer a plan or nothing).
_ETAG_ACTIONS = {"workspaces_start", "workspaces_stop"}

TAG_DESCRIPTIONS = {
    "Agent": "Calls made by the agent inside a workspace's machine.",
    "Projects": "Projects, their members and invitations.",
    "Tokens": "The caller's API tokens.",
    "User": "The caller: profile, settings and invitations.",
    "Workspaces": "Workspaces: create, lifecycle, events.",
}

STRING_RULES = (
    "**Strings.** No string the API accepts may hold the NUL character (U+0000), which the database "
    "cannot store: anywhere in a body (a value or a field's name) it is a 400 `validation_error`, in a "
    "query parameter a 400, in a path's id a 404, and headers cannot carry one.\n\n"
    "**Media types and sizes.** Every answer is `application/json`: an `Accept` header without it is a "
    "406. A body must be `application/json` (else 415) and at most the server's "
    "`DATA_UPLOAD_MAX_MEMORY_SIZE` bytes (else 413); a request line over 4094 bytes is a 414, a header "
    "over 8190 bytes or more than 100 headers a 431."
)


def _header_names(operation: dict, status: str, method: str) -> list[str]:
    parameters = operation.get("parameters", [])
    is_list = any(p.get("in") == "query" and p.get("name") == "limit" for p in parameters)
    takes_idempotency_key = any(
        p.get("in") == "header" and p.get("name") == "Idempotency-Key" for p in parameters
    )
    names = []
    if status not in _BEFORE_THE_APPLICATION:
        names.append("X-Request-ID")
    if status == "201":
        names.append("Location")
    if status == "200" and is_list:
        names.append("Link")
    if (
        status == "200"
        and not is_list
        and (method in {"get", "put", "patch"} or operation.get("operationId") in _ETAG_ACTIONS)
    ):
        names.append("ETag")
    if status == "401":
        names.append("WWW-Authenticate")
    if status == "429":
        names.append("Retry-After")
    if takes_idempotency_key and (status.startswith("2") or status in _REPLAYABLE_ERRORS):
        names.append("Idempotent-Replayed")
    return names


def _walk(node):
    """Every dict inside ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _nullable_ref(node) -> str | None:
    """The component name of drf-spectacular's nullable reference, ``allOf: [$ref], nullable: true``."""
    if isinstance(node, dict) and node.get("nullable") and len(node.get("allOf", [])) == 1:
        ref = node["allOf"][0].get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            return ref.rsplit("/", 1)[1]
    return None


def _nullable_refs_made_valid(result: dict) -> None:
    """OpenAPI 3.0's ``nullable`` needs a ``type`` beside it, and only admits null for the schema it
    sits in, not for an ``allOf`` inside (redocly's ``nullable-type-sibling``; spectral and redocly
    then refuse a ``null`` in an example). drf-spectacular writes a nullable reference as
    ``allOf: [$ref], nullable: true``, which is neither. So:

    * a reference to a named enum (``WorkspaceStatus``) becomes that enum written in place, with
      ``null`` among its values: the 3.0 way of a nullable enum;
    * a reference to an answer's object that is only ever used as nullable (``EventAttempt``)
      becomes a plain ``$ref``, and the object itself ``nullable``, so that the ``null`` of an
      example validates;
    * any other keeps its ``allOf`` and gets the ``type: object`` beside its ``nullable``: an
      object also used where it may not be null, and a request's object (``HardwareRequest``),
      which callers build by name and openapi-python-client would rename ``HardwareRequestType0``
      if it were nullable itself (no example sends a null one)."""
    schemas = result.get("components", {}).get("schemas", {})
    plain_uses: set[str] = set()
    nullable_uses: list[tuple[dict, dict, str]] = []  # (parent, key holder, name)
    for node in _walk(result):
        for key, value in node.items():
            name = _nullable_ref(value)
            if name is not None:
                nullable_uses.append((node, key, name))
            elif key == "$ref" and isinstance(value, str) and value.startswith("#/components/schemas/"):
                plain_uses.add(value.rsplit("/", 1)[1])
    # A $ref inside a nullable allOf counted itself as a plain use: take those back out.
    nullable_names = {name for _, _, name in nullable_uses}
    plain_uses -= {
        name
        for name in nullable_names
        if sum(1 for n in _walk(result) if n.get("$ref") == f"#/components/schemas/{name}")
        == sum(1 for _, _, used in nullable_uses if used == name)
    }
    for parent, key, name in nullable_uses:
        node, component = parent[key], schemas.get(name, {})
        extra = {k: v for k, v in node.items() if k not in {"allOf", "nullable", "type"}}
        if "enum" in component:
            parent[key] = {**component, **extra, "nullable": True, "enum": [*component["enum"], None]}
        elif name not in plain_uses and not name.endswith("Request"):
            component["nullable"] = True
            if "description" in extra and "description" not in component:
                component["description"] = extra["description"]
            parent[key] = {"$ref": f"#/components/schemas/{name}"}
        else:
            node["type"] = component.get("type", "object")


def contract_postprocessing_hook(result, generator, request, public):
    """What a generated client and a linter need that no single view knows: the response headers the
    server sends, a type beside every ``nullable``, a server entry, the string rules, and the tags."""
    components = result.setdefault("components", {})
    _nullable_refs_made_valid(result)

    components["headers"] = {name: dict(header) for name, header in RESPONSE_HEADERS.items()}
    for methods in result.get("paths", {}).values():
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, response in operation["responses"].items():
                names = _header_names(operation, str(status), method)
                if names:
                    headers = response.setdefault("headers", {})
                    for name in names:
                        headers[name] = {"$ref": f"#/components/headers/{name}"}

    # Relative: the server that serves this schema is the API (each deployment has its own address).
    result["servers"] = [{"url": "/", "description": "This deployment (the server that serves this schema)."}]
    info = result.setdefault("info", {})
    info["description"] = f"{info.get('description', '').rstrip()}\n\n{STRING_RULES}".strip()
    tags = sorted(
        {
            tag
            for methods in result.get("paths", {}).values()
            for op in methods.values()
            if isinstance(op, dict)
            for tag in op.get("tags", [])
        }
    )
    result["tags"] = [{"name": tag, "description": TAG_DESCRIPTIONS.get(tag, tag)} for tag in tags]
    return result
