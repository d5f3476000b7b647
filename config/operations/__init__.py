"""Running the service: health and readiness probes, metrics, structured logs, request middleware,
gunicorn's own error pages and the operator console's shared admin pieces."""
