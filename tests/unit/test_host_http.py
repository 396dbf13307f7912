"""Route templates of HTTP triggers, matched as ASP.NET Core routing does in the Functions host."""

from __future__ import annotations

import pytest

from devstack.host.http import Route, RouteError


def test_parameters_and_case_insensitive_literals() -> None:
    route = Route.parse("customers/{customer_id}/orders")
    assert route.match("/customers/cust-1/orders") == {"customer_id": "cust-1"}
    assert route.match("/CUSTOMERS/cust-1/Orders/") == {"customer_id": "cust-1"}
    assert route.match("/customers/a%20b/orders") == {"customer_id": "a b"}
    assert route.match("/customers/cust-1") is None
    assert route.match("/customers//orders") is None


def test_constraints_optional_and_catch_all() -> None:
    assert Route.parse("items/{id:int}").match("/items/42") == {"id": "42"}
    assert Route.parse("items/{id:int}").match("/items/abc") is None
    assert Route.parse("items/{id:int:min(1)}").match("/items/7") == {"id": "7"}
    assert Route.parse("names/{name:alpha}").match("/names/abc1") is None
    optional = Route.parse("things/{name?}")
    assert optional.match("/things") == {} and optional.match("/things/x") == {"name": "x"}
    assert Route.parse("files/{*path}").match("/files/a/b/c.txt") == {"path": "a/b/c.txt"}


def test_unsupported_template_is_a_clear_error() -> None:
    with pytest.raises(RouteError, match="not supported"):
        Route.parse("files/{name}.{ext}")
