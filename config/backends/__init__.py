"""Plumbing under Celery and the cache: the broker transports (filesystem, Redis) and the Redis
cache client."""
