"""One route table: the resolver's own routes (imagejobs.edge.api.common.route_table) are what the 405
answer, the OpenAPI document and the template's API events agree on."""

from __future__ import annotations

import json
import re
from typing import Any

from imagejobs_local.deploy import load_template
from imagejobs_local.openapi import api_module


def api_events() -> dict[str, set[str]]:
    """The API function's template events: path (parameters as {}) -> methods, "ANY public" for an
    ANY without the key authorizer."""
    events: dict[str, set[str]] = {}
    for event in load_template()["Resources"]["ApiFunction"]["Properties"]["Events"].values():
        if event["Type"] == "Api":
            props = event["Properties"]
            path = re.sub(r"\{[^}+]+\}", "{}", props["Path"])
            public = (props.get("Auth") or {}).get("Authorizer") == "NONE"
            method = props["Method"].upper()
            events.setdefault(path, set()).add(f"{method} public" if public and method == "ANY" else method)
    return events


def test_the_route_table_is_the_resolvers_and_every_route_reaches_the_function() -> None:
    routes = api_module().ROUTES
    table = {re.sub(r"<\w+>", "{}", route.path): route.methods for route in routes}
    # Read from Powertools' route lists: empty or partial if they move (a new Powertools).
    assert table["/v1/jobs/{}"] == {"GET", "DELETE"}
    assert table["/v1/images/generations"] == {"POST"} and table["/openapi.json"] == {"GET"}
    assert {"/v1/models", "/v1/models/{}", "/v1/models/{}/{}", "/v1/jobs/{}/cancel"} <= set(table)
    events = api_events()
    catch_all = {"/", "/{proxy+}"}
    # The template names no path the function does not serve (a route removed, its event left)...
    assert set(events) - catch_all <= set(table), set(events) - catch_all - set(table)
    # ...and every explicit resource takes ANY method (API Gateway answers a method a resource
    # lacks with its own 403, not our 405), with a keyless CORS preflight beside it (a browser's
    # OPTIONS carries no key) unless the resource is public anyway.
    for path, methods in events.items():
        assert methods & {"ANY", "ANY public"}, path
        assert "OPTIONS" in methods or "ANY public" in methods, path
    # The rest reach the function through /{proxy+} (one segment or more, any method).
    assert {"ANY", "OPTIONS"} <= events["/{proxy+}"]


def test_the_openapi_document_lists_the_same_paths_and_methods() -> None:
    module = api_module()
    document: dict[str, Any] = json.loads(module.openapi_document())
    documented = {
        re.sub(r"\{\w+\}", "{}", path): {method.upper() for method in operations if method != "parameters"}
        for path, operations in document["paths"].items()
    }
    table = {re.sub(r"<\w+>", "{}", route.path): set(route.methods) for route in module.ROUTES}
    table.pop("/openapi.json")  # include_in_schema=False: the document does not describe itself
    assert documented == table
