"""API conventions every endpoint shares: the error format, pagination, throttling, idempotency,
conditional requests (ETag, If-Match), request parsing, serializer helpers, the viewsets' shared steps
and the OpenAPI schema's helpers."""
