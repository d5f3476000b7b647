"""The base of the API's viewsets: each resource's lookup, permission, service and answer written once.

A viewset says how to find its object for the caller (``get_object``: the app's selector, which
scopes it to what the caller may see, answers 404 for anything else and 403 for what their role may
not do in ``self.action``) and which serializer shows it (``serializer_class``). This base then:

* answers a single resource's ``200`` with its ``ETag`` (``retrieve``, ``partial_update``, ``update``);
* gives writes ``writing()``: the object found and locked for the rest of the request's transaction,
  after the request's ``If-Match`` was checked against it (``config/api/conditional.py``), so that the
  check and the service's write are one step and a concurrent change cannot slip in between;
* answers a creation with ``201`` and its ``Location``.

``list_envelope`` is the schema of a list's answer (config/api/pagination.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from drf_spectacular.drainage import set_override
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from config.api.conditional import check_if_match, with_etag


class ResourceViewSet(GenericViewSet):
    # Any id reaches the view, which answers 404 for one that is not a UUID (routers would not match
    # one with a dot, and the catch-all 404 would answer instead).
    lookup_value_regex = "[^/]+"
    # The actions that answer one resource's representation, so carry its ETag.
    etag_actions = frozenset({"retrieve", "partial_update", "update"})

    def get_object(self, *, for_update: bool = False) -> Any:
        """The resource of this request for the caller (404 if they may not see it, 403 if they may
        not do ``self.action`` to it), its row locked when ``for_update``."""
        raise NotImplementedError

    def represent(self, instance: Any) -> dict:
        return self.get_serializer(instance).data

    @contextmanager
    def writing(self) -> Iterator[Any]:
        """``with self.writing() as obj:`` the object, locked until the block ends, after the
        request's ``If-Match`` matched it (else 412 and nothing changes)."""
        with transaction.atomic():
            instance = self.get_object(for_update=True)
            check_if_match(self.request, self.represent(instance))
            yield instance

    def answer(self, instance: Any) -> Response:
        return Response(self.represent(instance))

    def created(self, data: dict, location: str) -> Response:
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.action in self.etag_actions:
            with_etag(response)
        return response


class RetrieveResource:
    """``GET`` on one resource: its representation, with its ETag."""

    def retrieve(self, request, *args, **kwargs):
        return self.answer(self.get_object())


class UpdateResource:
    """``PATCH``: the body checked by ``input_serializers[self.action]`` (given the resource as
    ``instance`` in its context), then ``perform_update`` (a service) on the locked, If-Match-checked
    resource. A viewset that also takes ``PUT`` sets ``update = UpdateResource.partial_update`` and
    names a serializer for ``update`` (not partial: what it leaves out takes its defaults)."""

    input_serializers: dict[str, type[serializers.Serializer]]

    def perform_update(self, instance: Any, data: dict) -> Any:
        """Call the service; the resource as it is now."""
        raise NotImplementedError

    def partial_update(self, request, *args, **kwargs):
        with self.writing() as instance:
            serializer = self.input_serializers[self.action](
                data=request.data, partial=self.action == "partial_update", context={"instance": instance}
            )
            serializer.is_valid(raise_exception=True)
            instance = self.perform_update(instance, serializer.validated_data)
        return self.answer(instance)


class DestroyResource:
    """``DELETE`` on one resource: ``perform_destroy`` (a service) on the locked, If-Match-checked
    resource; 204."""

    def perform_destroy(self, instance: Any) -> None:
        raise NotImplementedError

    def destroy(self, request, *args, **kwargs):
        with self.writing() as instance:
            self.perform_destroy(instance)
        return Response(status=status.HTTP_204_NO_CONTENT)


def list_envelope(component_name: str, key: str, item: serializers.Serializer) -> serializers.Serializer:
    """The schema of a list's answer, ``{key: [item, ...]}`` (config/api/pagination.py): one object, not an
    array of them, which drf-spectacular would otherwise make of a viewset's ``list``."""
    return set_override(inline_serializer(component_name, {key: item}), "many", False)
