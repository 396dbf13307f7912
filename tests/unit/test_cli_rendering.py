"""`orders` output for people: 80 columns, whole (copyable) ids, no Python reprs, honest labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orders_cli import cli
from orders_cli.traffic import PublishPlan, generate_messages
from shared.envelope import SessionEnvelope
from shared.order_workflow import ORDERS, OrderStepProcessor
from shared.store.sqlite import SqliteOrderStore

# A long customer prefix and every poison recipe: the widest ids and reasons the generator makes.
PLAN = PublishPlan(3, 2, duplicates=0.2, shuffle=True, poison=7, seed=4, id_prefix="run-1")
TRACEPARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
REPRS = re.compile(r"\bNone\b|\{'|'\}|\[\]|\bTrue\b|\bFalse\b")


@pytest.fixture(autouse=True)
def eighty_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    for name in ("OrderStoreConnection", "ServiceBusConnection"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A store after a generated run, with one step held back so another one is parked now."""
    path = tmp_path / "orders.db"
    store = SqliteOrderStore(path, codec=ORDERS)
    processor = OrderStepProcessor(store)
    for number, m in enumerate(generate_messages(PLAN), start=1):
        if (m.order_id, m.sequence) != ("run-1-ord-0001-01", 2):  # nor its duplicate resend
            processor.process(
                SessionEnvelope(
                    m.body, m.session_id, m.message_id, sequence_number=number,
                    application_properties={**m.application_properties, "traceparent": TRACEPARENT},
                )
            )  # fmt: skip
    store.close()
    return "sqlite:///orders.db"  # relative to tmp_path (the working directory), as a user would type it


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def assert_readable(out: str) -> None:
    for line in out.splitlines():  # printed commands too: they are stacked with a ` \` continuation
        assert len(line.rstrip()) <= 80, f"wider than 80 columns: {line!r}"
    assert "…" not in out, "an id or a reason cut short"
    assert not REPRS.search(out), f"a Python repr in human output: {REPRS.search(out)}"


def unwrapped(out: str) -> str:
    """Printed commands joined again (a ` \\` continuation is how they stay within 80 columns)."""
    return re.sub(r" \\\n\s+", " ", out)


def quarantine_ids(capsys: pytest.CaptureFixture[str], store_url: str) -> list[str]:
    doc = json.loads(run(capsys, "quarantine", "list", "--all", "--json", "--store", store_url))
    return [q["id"] for q in doc["quarantine"]]


def test_status_fits_80_columns_with_whole_ids_and_says_parked_now(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    out = run(capsys, "status", "--store", store_url, "--limit", "50")
    assert_readable(out)
    assert "parked now" in out
    report = json.loads(run(capsys, "status", "--json", "--store", store_url))
    assert report["outcomes"]["parked"] > 0  # the held-back gap
    for order in report["orders"]:
        assert re.search(rf"{order['customer_id']}\s+{order['order_id']}\s+{order['state']}\b", out), order
    waiting = next(o for o in report["orders"] if o["waiting_for_sequence"])
    assert f"seq {waiting['waiting_for_sequence']}" in out
    assert f"orders quarantine list --store {store_url}" in unwrapped(out)  # the hint works as printed


def test_quarantine_list_shows_every_id_whole_at_80_columns(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    ids = quarantine_ids(capsys, store_url)
    assert len(ids) == 7
    out = run(capsys, "quarantine", "list", "--store", store_url)
    assert_readable(out)
    listed = [line.split()[0] for line in out.splitlines() if re.match(r"\s+[0-9a-f]{24}\s", line)]
    assert sorted(listed) == sorted(ids)
    assert f"orders quarantine show ID --store {store_url}" in unwrapped(out)


def test_quarantine_show_has_no_reprs_and_whole_trace_context(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    for quarantine_id in quarantine_ids(capsys, store_url):
        out = run(capsys, "quarantine", "show", quarantine_id, "--store", store_url)
        head = out.split("\nbody")[0]  # the body is the sender's bytes, shown as they are
        assert_readable(head)
        assert quarantine_id in head
        assert re.search(r"replayed_at\s+-\s*$", head, re.M)  # missing is '-', never None
        assert re.search(r"^\s+traceparent\s+00-a{32}-b{16}-01\s*$", head, re.M)  # one row, whole
