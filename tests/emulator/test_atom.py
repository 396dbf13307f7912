"""The management API's wire helpers without a client: durations, SQL parameters, request parsing."""

from __future__ import annotations

import pytest

from devstack.emulator import atom
from devstack.emulator.admin import AdminApi
from devstack.emulator.broker import Broker
from devstack.emulator.filters import FilterError, bind_parameters
from devstack.emulator.limits import Limits

ENTRY = (
    '<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml">'
    '<QueueDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect">'
    "{}</QueueDescription></content></entry>"
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (60, "PT1M"),
        (14 * 86400, "P14D"),
        (0.3, "PT0.3S"),
        (3723, "PT1H2M3S"),
        (90061, "P1DT1H1M1S"),
        (0, "PT0S"),
    ],
)
def test_durations_are_written_like_timespans_and_read_back(seconds: float, text: str) -> None:
    assert atom.iso_duration(seconds) == text
    assert atom.parse_iso_duration(text) == pytest.approx(seconds)


def test_timespan_max_means_never() -> None:
    assert atom.iso_duration(float("inf")) == atom.TIMESPAN_MAX
    assert atom.iso_duration(atom.parse_iso_duration(atom.TIMESPAN_MAX)) == atom.TIMESPAN_MAX


def test_sql_parameters_bind_as_literals_outside_strings() -> None:
    expr = "a = @p AND b = '@p' AND c = @n AND d = @flag"
    bound = bind_parameters(expr, {"@p": "it's", "@n": 2, "@flag": True})
    assert bound == "a = 'it''s' AND b = '@p' AND c = 2 AND d = TRUE"
    with pytest.raises(FilterError, match="no value for parameter @missing"):
        bind_parameters("x = @missing", {"@p": 1})


def _put(api: AdminApi, path: str, body: str) -> int:
    return api.handle("PUT", path, {}, {}, body.encode(), "localhost:5300").status


def test_request_bodies_are_checked() -> None:
    api = AdminApi(Broker(), Limits.standard())
    assert _put(api, "/q", "not xml") == 400
    assert _put(api, "/q", ENTRY.format("<MaxDeliveryCount>zero</MaxDeliveryCount>")) == 400
    assert _put(api, "/q", ENTRY.format("<RequiresSession>maybe</RequiresSession>")) == 400
    assert _put(api, "/-bad-name", ENTRY.format("")) == 400
    # user metadata that names another description does not change what is created
    assert _put(api, "/q", ENTRY.format("<UserMetadata>TopicDescription</UserMetadata>")) == 201
    assert api.broker.queues["q"].kind == "queue"
    assert _put(api, "/q", ENTRY.format("")) == 409


def test_unknown_routes_are_404_and_errors_use_the_service_body() -> None:
    api = AdminApi(Broker(), Limits.standard())
    r = api.handle("GET", "/$Resources/widgets", {}, {}, b"", "h")
    assert r.status == 404
    assert r.body.startswith(b"<?xml") and b"<Error><Code>404</Code>" in r.body
    assert api.handle("GET", "/nope/subscriptions/s", {}, {}, b"", "h").status == 404
