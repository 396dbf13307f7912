"""Subscription rule semantics without a broker: SQL three-valued logic, LIKE, IN, arithmetic, actions,
correlation equality, and compile errors (the SDK-level routing is in test_topics.py)."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.emulator.codec import Described, encode
from devstack.emulator.config import RuleConfig
from devstack.emulator.filters import FilterError, MessageView, compile_correlation, compile_rule, compile_sql
from devstack.emulator.message import Message

VIEW = MessageView(
    system={"label": "Red", "messageid": "m-1", "sessionid": "C1", "contenttype": "application/json"},
    user={"color": "red", "qty": 5, "price": 2.5, "flag": True, "name": "50% off", "empty": ""},
)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("color = 'red'", True),
        ("color = 'RED'", False),  # case-sensitive strings
        ("color <> 'red'", False),
        ("color != 'blue'", True),
        ("qty > 4 AND qty <= 5", True),
        ("price >= 2.5 AND price < 3", True),
        ("qty = 5.0", True),  # numeric comparison across int/float
        ("qty = '5'", False),  # no implicit string/number conversion
        ("missing = 1", False),
        ("NOT (missing = 1)", False),  # unknown stays unknown under NOT
        ("missing = 1 OR qty = 5", True),  # unknown OR true = true
        ("missing = 1 AND qty = 5", False),
        ("missing IS NULL AND color IS NOT NULL", True),
        ("color IN ('blue', 'red')", True),
        ("color NOT IN ('blue', 'red')", False),
        ("missing IN ('x')", False),
        ("color LIKE 'r_d'", True),
        ("color LIKE 'b%'", False),
        ("color NOT LIKE 'b%'", True),
        ("name LIKE '50!% off' ESCAPE '!'", True),
        ("name LIKE '50!%' ESCAPE '!'", False),
        ("EXISTS(color) AND NOT EXISTS(missing)", True),
        ("EXISTS(sys.Label)", True),
        ("sys.Label = 'Red' AND sys.SessionId = 'C1'", True),
        ("sys.Subject = 'Red'", True),
        ("user.color = 'red' AND [color] = 'red'", True),
        ("(qty + 1) * 2 = 12 AND qty % 2 = 1 AND qty / 2 = 2", True),
        ("-qty < 0", True),
        ("flag", True),
        ("flag = FALSE", False),
        ("1 = 1", True),
        ("empty = ''", True),
        ("name = 'it''s'", False),
        ("color = 'red' and qty = 5", True),  # keywords are case-insensitive
    ],
)
def test_sql_filter(expr: str, expected: bool) -> None:
    assert compile_sql(expr)(VIEW) is expected


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "color =",
        "color = 'red' AND",
        "sys.Nope = 1",
        "newid() = 1",
        "color LIKE 5",
        "a = 'open",
        "x.y = 1",
    ],
)
def test_sql_filter_errors(expr: str) -> None:
    with pytest.raises(FilterError):
        compile_sql(expr)


def test_correlation_filter_requires_every_field() -> None:
    assert compile_correlation({"Label": "Red", "SessionId": "C1"})(VIEW)
    assert compile_correlation({"Subject": "Red", "Properties": {"color": "red", "qty": 5}})(VIEW)
    assert not compile_correlation({"Label": "Red", "CorrelationId": "x"})(VIEW)  # absent -> no match
    assert not compile_correlation({"Properties": {"qty": "5"}})(VIEW)
    with pytest.raises(FilterError):
        compile_correlation({"Colour": "red"})
    with pytest.raises(FilterError):
        compile_correlation({})


def _message(app: dict[str, Any]) -> Message:
    out = bytearray()
    encode(Described(0x74, app), out)
    return Message(app_raw=bytes(out))


def test_action_sets_and_removes_user_properties_on_the_copy() -> None:
    m = _message({"color": "red", "qty": 5, "drop": "me"})
    rule = compile_rule(
        RuleConfig("r", "Sql", "color = 'red'", "SET routed = 'yes'; SET qty = qty * 2; REMOVE drop")
    )
    view = MessageView.of(m)
    assert rule.match(view)
    rule.apply_action(m, view)
    assert MessageView.of(m).user == {"color": "red", "qty": 10, "routed": "yes"}


def test_actions_on_system_properties_are_refused() -> None:
    with pytest.raises(FilterError):
        compile_rule(RuleConfig("r", "Sql", "1 = 1", "SET sys.Label = 'x'"))
