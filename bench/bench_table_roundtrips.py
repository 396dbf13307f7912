"""Storage round trips per message at steady state: TableOrderStore vs. a naive read/write/write design.

Starts its own Azurite (devstack/azurite.py, as the test fixture does), replays one message stream through
  * TableOrderStore (session cache + one entity-group transaction per message),
  * TableOrderStore with the cache disabled (TTL 0: every message re-reads its partition),
  * a naive store in this file: point-read the state, write the state, write the idempotency record,
and prints round trips and wall time per message. Figures only, no assertions.

    python -m bench.bench_table_roundtrips [--messages 300] [--sessions 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from devstack.azurite import AzuriteTable, ensure_azurite_installed, unique_table_name
from orders_cli.samples import make_idem, make_ledger
from shared.engine.records import SessionChanges
from shared.order_workflow import ORDERS, OrderLedger
from shared.store.table import RequestCounter, TableOrderStore
from shared.store.table_entities import (
    escape_key,
    idempotency_entity,
    ledger_entity,
    ledger_from_entity,
    ledger_key,
)


class NaiveTableStore:
    """The obvious design: no cache, no transaction; three requests per message (and not atomic)."""

    def __init__(self, conn: str, table: str) -> None:
        self.counter = RequestCounter()
        self.client = TableClient.from_connection_string(conn, table, per_retry_policies=[self.counter])
        self.client.create_table()

    @property
    def requests_made(self) -> int:
        return self.counter.count

    def get_ledger(self, session_id: str, stream_key: str) -> OrderLedger | None:
        try:
            entity = self.client.get_entity(escape_key(session_id), ledger_key(stream_key))
        except ResourceNotFoundError:
            return None
        return ledger_from_entity(entity, str(entity.metadata["etag"]), ORDERS)

    def commit(self, changes: SessionChanges) -> None:
        ledger = changes.ledger
        assert ledger is not None
        entity = ledger_entity(changes.session_id, ledger, ORDERS)
        if ledger.version is None:
            meta = self.client.create_entity(entity)
        else:
            meta = self.client.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=ledger.version,
                match_condition=MatchConditions.IfNotModified,
            )
        ledger.version = meta["etag"]
        for record in changes.idempotency:
            self.client.upsert_entity(idempotency_entity(changes.session_id, record))

    def close(self) -> None:
        self.client.close()


@dataclass
class Result:
    name: str
    first_touch: float
    steady: float
    ms_per_message: float


def run(name: str, store: Any, sessions: int, messages: int) -> Result:
    """Each session handles its messages in order, like one Service Bus session receiver."""
    per_session = max(2, messages // sessions)

    def one_message(session: str, seq: int) -> None:
        ledger = store.get_ledger(session, "o-1")
        if ledger is None:
            ledger = make_ledger(session, "o-1")
        ledger.last_sequence = seq
        store.commit(SessionChanges(session, ledger=ledger, idempotency=[make_idem(session, "o-1", seq)]))

    start = store.requests_made
    for s in range(sessions):  # first message of every session: cold
        one_message(f"customer-{s}", 1)
    first = (store.requests_made - start) / sessions

    start, t0 = store.requests_made, time.perf_counter()
    count = 0
    for seq in range(2, per_session + 1):
        for s in range(sessions):
            one_message(f"customer-{s}", seq)
            count += 1
    elapsed = time.perf_counter() - t0
    return Result(name, first, (store.requests_made - start) / count, 1000 * elapsed / count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300, help="messages per design (default 300)")
    parser.add_argument("--sessions", type=int, default=5, help="sessions (customers), default 5")
    args = parser.parse_args(argv)

    with AzuriteTable(ensure_azurite_installed()) as azurite:
        conn = azurite.connection_string
        designs: list[tuple[str, Callable[[], Any]]] = [
            (
                "TableOrderStore (cache + 1 transaction)",
                lambda: TableOrderStore.from_connection_string(conn, unique_table_name(), codec=ORDERS),
            ),
            (
                "TableOrderStore, cache off (TTL 0)",
                lambda: TableOrderStore.from_connection_string(
                    conn, unique_table_name(), codec=ORDERS, cache_ttl_seconds=0
                ),
            ),
            ("naive: read + write state + write record", lambda: NaiveTableStore(conn, unique_table_name())),
        ]
        results = []
        for name, factory in designs:
            store = factory()
            try:
                results.append(run(name, store, args.sessions, args.messages))
            finally:
                store.close()

    print(f"Azurite Table on 127.0.0.1, {args.sessions} sessions, ~{args.messages} messages per design")
    print(f"{'design':<44} {'first msg/session':>18} {'steady rt/msg':>14} {'ms/msg':>8}")
    for r in results:
        print(f"{r.name:<44} {r.first_touch:>18.2f} {r.steady:>14.2f} {r.ms_per_message:>8.2f}")
    print("rt = HTTP requests to storage; steady = after each session's first message.")


if __name__ == "__main__":
    main()
