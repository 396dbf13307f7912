"""The embedded SQLite store: the default for local runs, one transaction per message.

WAL lets the operator CLI read while the host writes. `synchronous` defaults to NORMAL: a committed
message survives a process crash (SIGKILL included), not a power cut; pass `?synchronous=full` in the
connection for that.

The store is the file this instance opened first, by identity (st_dev, st_ino), not by path: a file
deleted or replaced under a running host is noticed after the next commit (one stat(), see
`_verify_identity`) and the store refuses from then on (StoreUnavailable: the message is redelivered,
never completed into a file that is no longer the store) until the process restarts (docs/store.md
"The file is the store").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from pydantic_core import to_json

from shared.engine.changes import chain_version, coalesce
from shared.engine.ledger import Ledger
from shared.engine.records import ParkedMessage, QuarantineRecord, SessionChanges
from shared.engine.workflow import StateCodec
from shared.store.base import PARKED_CACHE_MAX_BODY, ConcurrencyConflict, StoreRejected, StoreUnavailable
from shared.store.workflow_record import WorkflowMismatch, check_readable, settle
from shared.workflows import WorkflowRecord

log = logging.getLogger(__name__)

# Tables holding documents are rowid tables: WITHOUT ROWID suits small rows only (SQLite's own advice).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledgers (
    session_id TEXT NOT NULL, stream_key TEXT NOT NULL, version INTEGER NOT NULL,
    state TEXT NOT NULL, last_sequence INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (session_id, stream_key));
CREATE TABLE IF NOT EXISTS parked (
    session_id TEXT NOT NULL, stream_key TEXT NOT NULL, sequence INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (session_id, stream_key, sequence));
CREATE TABLE IF NOT EXISTS idempotency (
    session_id TEXT NOT NULL, stream_key TEXT NOT NULL, sequence INTEGER NOT NULL,
    content_hash TEXT NOT NULL, message_id TEXT NOT NULL, recorded_at TEXT NOT NULL,
    PRIMARY KEY (session_id, stream_key, sequence)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (recorded_at);
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, status TEXT NOT NULL, quarantined_at TEXT NOT NULL,
    doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workflow (
    id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, version TEXT NOT NULL,
    recorded_at TEXT NOT NULL);
"""

_KEYED_TABLES = ("ledgers", "parked", "idempotency")  # databases written before the split say `order_id`
_SYNC_MODES = {"off", "normal", "full", "extra"}


L = TypeVar("L", bound=Ledger[Any])
T = TypeVar("T")


def _execute_rows(db: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> sqlite3.Cursor:
    """`sql` once per row: one row (a single message's commit, the usual case) skips executemany's set-up."""
    return db.execute(sql, rows[0]) if len(rows) == 1 else db.executemany(sql, rows)


def _rename_legacy_key_columns(db: sqlite3.Connection) -> None:
    """A database written before the engine/workflow split keys its rows by `order_id`: rename in place."""
    for table in _KEYED_TABLES:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "order_id" in columns:
            db.execute(f"ALTER TABLE {table} RENAME COLUMN order_id TO stream_key")


class SqliteOrderStore(Generic[L]):
    def __init__(
        self,
        path: str | Path,
        *,
        codec: StateCodec[Any, L],
        workflow: WorkflowRecord | None = None,
        synchronous: str = "normal",
        busy_timeout_ms: int = 10_000,
        cache_size: int = 4096,
        checkpoint_interval_s: float = 1.0,
    ) -> None:
        if synchronous.lower() not in _SYNC_MODES:
            raise ValueError(f"synchronous must be one of {sorted(_SYNC_MODES)}, not {synchronous!r}")
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = int(busy_timeout_ms)
        # One connection, serialised by a lock: writes serialise in SQLite anyway, and it keeps the
        # per-message path free of connection set-up. Opened lazily and reopened after failures
        # (reopen()), so a file that is read-only, locked or missing at start does not need a restart.
        self._lock = threading.Lock()
        self._codec = codec
        self._workflow = workflow  # recorded in the file on first open; another workflow is refused
        self._db: sqlite3.Connection | None = None
        self._on_disk = str(path) != ":memory:"
        # (st_dev, st_ino) of the file this store first opened: the store IS that file. Once set, opening
        # never creates a file again (mode=rw), and a different or missing file at the path fences the store.
        self._identity: tuple[int, int] | None = None
        self._fenced: str | None = None  # why this store refuses every call (the file is no longer it)
        self._wal_checkpoints = self._on_disk and checkpoint_interval_s > 0
        with self._lock:
            try:
                self._conn()
            except StoreUnavailable as exc:  # the first message retries; starting must not crash
                log.warning("order store not available yet", extra={"store": "sqlite", "error": str(exc)})
        # Checkpoint the WAL from a background thread instead of inside whichever commit crosses the
        # threshold: that commit would otherwise pay the checkpoint's fsync on the per-message path.
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self._wal_checkpoints:
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                args=(checkpoint_interval_s, busy_timeout_ms),
                name="sqlite-wal-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()
        # Ledgers this process wrote or read, by (session, stream). A hit skips a read; the version check in
        # commit() still guards it, so another writer costs one ConcurrencyConflict (and a fresh read), never
        # a wrong decision.
        self._cache: OrderedDict[tuple[str, str], L] = OrderedDict()
        self._parked_cache: dict[tuple[str, str, int], ParkedMessage] = {}  # immutable records
        self._cache_size = cache_size

    def _conn(self) -> sqlite3.Connection:
        """The open connection, opening it first if needed (caller holds self._lock)."""
        if self._db is not None:
            return self._db
        if self._fenced is not None:
            raise StoreUnavailable(self._fenced)
        db: sqlite3.Connection | None = None
        try:
            if self._identity is not None:  # reopening: only the very file this store is, never a new one
                self._verify_identity()
                self._align_companions()
                db = sqlite3.connect(
                    f"{self.path.absolute().as_uri()}?mode=rw",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                if self._on_disk:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._align_companions()
                db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            _rename_legacy_key_columns(db)
            db.executescript(_SCHEMA)
            if self._workflow is not None:
                self._settle_workflow(db, self._workflow)
            if self._wal_checkpoints:
                db.execute("PRAGMA wal_autocheckpoint = 0")
            if self._on_disk and self._identity is None:
                st = os.stat(self.path)
                self._identity = (st.st_dev, st.st_ino)
        except (WorkflowMismatch, StoreUnavailable):
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._db = db
        return db

    def _settle_workflow(self, db: sqlite3.Connection, running: WorkflowRecord) -> None:
        """Record the running workflow in a file without a record (after checking it can read a ledger
        already there), or refuse a file another workflow wrote (WorkflowMismatch)."""
        row = db.execute("SELECT name, version FROM workflow WHERE id = 1").fetchone()
        recorded = None if row is None else WorkflowRecord(str(row[0]), str(row[1]))
        where = f"the SQLite store {self.path}"
        if recorded is None:
            sample = db.execute("SELECT doc, session_id, stream_key FROM ledgers LIMIT 1").fetchone()
            check_readable(
                None
                if sample is None
                else {"doc": sample[0], "session_id": sample[1], "stream_key": sample[2]},
                lambda found: self._ledger(found["session_id"], found["stream_key"], found["doc"], 0),
                running,
                where,
            )
        to_write = settle(recorded, running, where)
        if to_write is not None:
            db.execute(
                "INSERT INTO workflow (id, name, version, recorded_at) VALUES (1, ?, ?, datetime('now'))"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version,"
                " recorded_at = excluded.recorded_at",
                (to_write.name, to_write.version),
            )

    def recorded_workflow(self) -> WorkflowRecord | None:
        """The workflow the file records (None: none yet)."""
        row = self._query_one("SELECT name, version FROM workflow WHERE id = 1", ())
        return None if row is None else WorkflowRecord(str(row[0]), str(row[1]))

    def _verify_identity(self) -> None:
        """Raise StoreUnavailable, and fence the store for good, when the file at the path is not the file
        this store opened (deleted, or replaced by another file: a restored copy, a new empty database).
        One stat() (bench/bench_sqlite_identity.py measures it); the caller holds the lock."""
        if self._identity is None or self._fenced is not None:
            if self._fenced is not None:
                raise StoreUnavailable(self._fenced)
            return
        try:
            st = os.stat(self.path)
            now: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            now = None
        except OSError:
            return  # cannot tell (e.g. a permission change): the next commit's check will tell
        if now == self._identity:
            return
        what = "deleted" if now is None else "replaced by another file"
        self._fenced = (
            f"the store file {self.path} was {what} while this process had it open; this process will not "
            "complete messages into a file that is no longer the store: restart it to open the file there now"
        )
        log.error(
            "order store file deleted or replaced: refusing every message until restart",
            extra={"store": "sqlite", "path": str(self.path), "opened": self._identity, "now": now},
        )
        # Closing is safe: SQLite skips the checkpoint-on-close (and the -wal deletion) for a database file
        # that has moved (pager.c databaseIsUnmoved, SQLITE_FCNTL_HAS_MOVED), so the new file is untouched.
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._evict_locked(None)
        raise StoreUnavailable(self._fenced)

    def _align_companions(self) -> None:
        """SQLite creates -wal/-shm with the database file's mode, and a read-only connection leaves them
        behind: once the operator makes the database writable again, they would keep every connection
        read-only. Give them the database file's mode again (SQLite's own rule), where we may."""
        try:
            mode = self.path.stat().st_mode & 0o777
        except OSError:
            return
        for suffix in ("-wal", "-shm"):
            companion = self.path.with_name(self.path.name + suffix)
            with contextlib.suppress(OSError):
                if companion.stat().st_mode & 0o777 != mode:
                    companion.chmod(mode)

    @classmethod
    def from_url(
        cls, url: str, *, codec: StateCodec[Any, L], workflow: WorkflowRecord | None = None
    ) -> SqliteOrderStore[L]:
        """`sqlite:///relative/path.db`, `sqlite:////abs/path.db`, optional `?synchronous=full`."""
        rest = url.removeprefix("sqlite:///")
        path, _, query = rest.partition("?")
        options = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        if not path:
            raise ValueError("sqlite connection needs a path: sqlite:///.local/orders.db")
        return cls(path, codec=codec, workflow=workflow, synchronous=options.get("synchronous", "normal"))

    # --- the per-message path ---
    def answers_from_cache(self, session_id: str, stream_key: str) -> bool:
        """Whether get_ledger would answer without reading the file (tracing skips a span for it)."""
        return (session_id, stream_key) in self._cache

    def get_ledger(self, session_id: str, stream_key: str) -> L | None:
        key = (session_id, stream_key)
        with self._lock:  # the host calls from one thread per session; the LRU is shared
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached.copy()
        row = self._query_one(
            "SELECT doc, version FROM ledgers WHERE session_id = ? AND stream_key = ?",
            (session_id, stream_key),
        )
        if not row:
            return None
        ledger = self._ledger(session_id, stream_key, row[0], row[1])
        with self._lock:
            self._remember(key, ledger)
        return ledger.copy()

    def _ledger(self, session_id: str, stream_key: str, doc: str, version: object) -> L:
        return Ledger.from_document(
            json.loads(doc), self._codec, version=str(version), session_id=session_id, stream_key=stream_key
        )

    def _remember(self, key: tuple[str, str], ledger: L) -> None:
        self._cache[key] = ledger
        self._cache.move_to_end(key)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def get_parked(self, session_id: str, stream_key: str, sequence: int) -> ParkedMessage | None:
        with self._lock:
            parked = self._parked_cache.get((session_id, stream_key, sequence))
        if parked is not None:
            return parked
        row = self._query_one(
            "SELECT doc FROM parked WHERE session_id = ? AND stream_key = ? AND sequence = ?",
            (session_id, stream_key, sequence),
        )
        return ParkedMessage.from_document(json.loads(row[0])) if row else None

    def commit(self, changes: SessionChanges) -> None:
        sid = changes.session_id
        with self._lock:
            version = self._transaction(
                lambda db: self._write(db, sid, changes), lambda: self._forget(changes)
            )
            self._after_commit(sid, changes, version)

    def commit_batch(self, session_id: str, units: Sequence[SessionChanges]) -> None:
        """A batch's runs (one per stream: its ledger written once) in ONE SQLite transaction."""
        runs = coalesce(units)
        if not runs:
            return

        def write(db: sqlite3.Connection) -> list[int | None]:
            streams = [run.ledger.stream_key for run in runs if run.ledger is not None]
            if len(streams) == len(set(streams)):  # one run per stream: the usual case
                versions = self._write_ledgers(db, session_id, runs)
                self._write(db, session_id, _without_ledgers(session_id, runs))
                return versions
            written: dict[str, str | None] = {}
            chained: list[int | None] = []
            for run in runs:
                chain_version(run, written)
                chained.append(self._write(db, session_id, run))
                if run.ledger is not None:
                    written[run.ledger.stream_key] = str(chained[-1])
            return chained

        with self._lock:
            versions = self._transaction(write, lambda: self._evict_locked(session_id))
            for run, version in zip(runs, versions, strict=True):
                self._after_commit(session_id, run, version)

    def _transaction(self, write: Callable[[sqlite3.Connection], T], forget: Callable[[], None]) -> T:
        """`write` in one BEGIN IMMEDIATE transaction (the caller holds the lock), then a check that the
        file at the path is still the one this store opened: a file deleted or replaced before COMMIT
        returned means StoreUnavailable, so the message is not completed (the check after COMMIT alone is
        the guarantee; one before as well would only cost a second stat()). On any failure the cached
        state it touched is forgotten and the error is the store's: a refused row or a version mismatch is
        a ConcurrencyConflict; a value SQLite can never hold (string or blob over SQLITE_LIMIT_LENGTH, an
        integer beyond 64 bits, text that is not UTF-8) is StoreRejected (not transient: about the
        message); locked beyond busy_timeout, read-only, disk full, disk I/O, ... is StoreUnavailable."""
        try:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                result = write(db)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            self._verify_identity()
        except (ConcurrencyConflict, StoreUnavailable):
            forget()
            raise
        except sqlite3.IntegrityError as exc:
            forget()
            raise ConcurrencyConflict(str(exc)) from exc
        except sqlite3.DataError as exc:  # SQLITE_TOOBIG and friends: the same row fails every time
            forget()
            raise StoreRejected(f"SQLite refused the commit for good: {exc}") from exc
        except (OverflowError, UnicodeEncodeError) as exc:
            forget()
            raise StoreRejected(f"SQLite cannot hold a value of this message: {_value_error(exc)}") from exc
        except sqlite3.DatabaseError as exc:
            forget()
            raise StoreUnavailable(str(exc)) from exc
        return result

    def _after_commit(self, sid: str, changes: SessionChanges, new_version: int | None) -> None:
        """Caches after a successful commit (the caller holds the lock)."""
        ledger = changes.ledger
        if ledger is not None and new_version is not None:
            ledger.version = str(new_version)
        if ledger is not None and ledger.version is not None:
            self._remember((sid, ledger.stream_key), cast(L, ledger.copy()))  # written through us: ours
        for stream_key, seq in changes.unpark:
            self._parked_cache.pop((sid, stream_key, seq), None)
        for p in changes.park:  # released soon by this process, usually: skip re-reading the body
            if len(p.envelope.body) <= PARKED_CACHE_MAX_BODY:
                self._parked_cache[(sid, p.stream_key, p.sequence)] = p
        while len(self._parked_cache) > self._cache_size:
            self._parked_cache.pop(next(iter(self._parked_cache)))

    def _forget(self, changes: SessionChanges) -> None:
        if changes.ledger is not None:
            self._cache.pop((changes.session_id, changes.ledger.stream_key), None)

    # --- recovery ---
    def evict(self, session_id: str | None = None) -> None:
        with self._lock:
            self._evict_locked(session_id)

    def _evict_locked(self, session_id: str | None) -> None:
        if session_id is None:
            self._cache.clear()
            self._parked_cache.clear()
            return
        for key in [k for k in self._cache if k[0] == session_id]:
            del self._cache[key]
        for pkey in [k for k in self._parked_cache if k[0] == session_id]:
            del self._parked_cache[pkey]

    def reopen(self) -> None:
        with self._lock:
            self._evict_locked(None)
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None
            self._conn()

    def _write_ledgers(
        self, db: sqlite3.Connection, sid: str, runs: list[SessionChanges]
    ) -> list[int | None]:
        """Every run's ledger (one per stream) in two statements; the new version per run."""
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        versions: list[int | None] = []
        for run in runs:
            ledger = run.ledger
            if ledger is None:
                versions.append(None)
                continue
            doc = to_json(ledger.to_document(self._codec)).decode()  # compact; 4x json.dumps' speed
            state = self._codec.status(ledger.state)
            if ledger.version is None:
                versions.append(1)
                inserts.append((sid, ledger.stream_key, state, ledger.last_sequence, doc))
            else:
                versions.append(int(ledger.version) + 1)
                updates.append(
                    (
                        versions[-1],
                        state,
                        ledger.last_sequence,
                        doc,
                        sid,
                        ledger.stream_key,
                        int(ledger.version),
                    )
                )
        if inserts:  # new streams: the primary key refuses a concurrent creator
            _execute_rows(
                db,
                "INSERT INTO ledgers (session_id, stream_key, version, state, last_sequence, doc)"
                " VALUES (?, ?, 1, ?, ?, ?)",
                inserts,
            )
        if updates:
            cur = _execute_rows(
                db,
                "UPDATE ledgers SET version = ?, state = ?, last_sequence = ?, doc = ?"
                " WHERE session_id = ? AND stream_key = ? AND version = ?",
                updates,
            )
            if cur.rowcount != len(updates):
                raise ConcurrencyConflict(f"a ledger of session {sid} changed since it was read")
        return versions

    def _write(self, db: sqlite3.Connection, sid: str, changes: SessionChanges) -> int | None:
        """One commit's rows; the ledger's new version (None when it has no ledger)."""
        new_version = self._write_ledgers(db, sid, [changes])[0]
        for stream_key, seq in changes.unpark:
            cur = db.execute(
                "DELETE FROM parked WHERE session_id = ? AND stream_key = ? AND sequence = ?",
                (sid, stream_key, seq),
            )
            if cur.rowcount != 1:
                raise ConcurrencyConflict(f"parked {sid}/{stream_key}/{seq} is gone")
        if changes.park:
            _execute_rows(
                db,
                "INSERT INTO parked (session_id, stream_key, sequence, doc) VALUES (?, ?, ?, ?)",
                [(sid, p.stream_key, p.sequence, json.dumps(p.to_document())) for p in changes.park],
            )
        if changes.idempotency:
            _execute_rows(
                db,
                "INSERT OR REPLACE INTO idempotency"
                " (session_id, stream_key, sequence, content_hash, message_id, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (sid, r.stream_key, r.sequence, r.content_hash, r.message_id, r.recorded_at.isoformat())
                    for r in changes.idempotency
                ],
            )
        if changes.quarantine:
            _execute_rows(
                db,
                "INSERT OR REPLACE INTO quarantine (id, session_id, status, quarantined_at, doc)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        q.id,
                        _text_column(q.session_id),  # a quarantine record is always storable
                        q.status,
                        q.quarantined_at.isoformat(),
                        json.dumps(q.to_document()),
                    )
                    for q in changes.quarantine
                ],
            )
        return new_version

    # --- operator reads and maintenance ---
    def list_ledgers(self, session_id: str | None = None) -> list[L]:
        rows = self._select_by_session(
            "SELECT session_id, stream_key, doc, version FROM ledgers", "session_id, stream_key", session_id
        )
        return [self._ledger(sid, key, doc, version) for sid, key, doc, version in rows]

    def list_parked(self, session_id: str | None = None) -> list[ParkedMessage]:
        rows = self._select_by_session(
            "SELECT doc FROM parked", "session_id, stream_key, sequence", session_id
        )
        return [ParkedMessage.from_document(json.loads(doc)) for (doc,) in rows]

    def _select_by_session(self, select: str, order_by: str, session_id: str | None) -> list[Any]:
        if session_id is None:
            return self._query_all(f"{select} ORDER BY {order_by}", ())
        return self._query_all(f"{select} WHERE session_id = ? ORDER BY {order_by}", (session_id,))

    def list_quarantine(self, *, include_replayed: bool = False) -> list[QuarantineRecord]:
        where = "" if include_replayed else " WHERE status = 'open'"
        rows = self._query_all(f"SELECT doc FROM quarantine{where} ORDER BY quarantined_at, id", ())
        return [QuarantineRecord.from_document(json.loads(doc)) for (doc,) in rows]

    def get_quarantine(self, quarantine_id: str) -> QuarantineRecord | None:
        row = self._query_one("SELECT doc FROM quarantine WHERE id = ?", (quarantine_id,))
        return QuarantineRecord.from_document(json.loads(row[0])) if row else None

    def mark_replayed(self, quarantine_id: str, at: datetime) -> None:
        record = self.get_quarantine(quarantine_id)
        if record is None:
            raise KeyError(quarantine_id)
        doc = record.to_document() | {"status": "replayed", "replayed_at": at.isoformat()}
        self._execute(
            "UPDATE quarantine SET status = 'replayed', doc = ? WHERE id = ?",
            (json.dumps(doc), quarantine_id),
        )

    def purge_idempotency_records(self, older_than: datetime) -> int:
        return self._execute("DELETE FROM idempotency WHERE recorded_at < ?", (older_than.isoformat(),))

    def count_idempotency_records(self) -> int:
        row = self._query_one("SELECT COUNT(*) FROM idempotency", ())
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _checkpoint_loop(self, interval_s: float, busy_timeout_ms: int) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(interval_s):
                # a busy or failing checkpoint is retried next time (on a fresh connection); commits
                # are unaffected
                try:
                    if conn is None:  # mode=rw: never creates a file where the store's was deleted
                        conn = sqlite3.connect(
                            f"{self.path.absolute().as_uri()}?mode=rw",
                            uri=True,
                            isolation_level=None,
                            check_same_thread=False,
                        )
                        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    # --- helpers ---
    def _query_one(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            try:
                return self._conn().execute(sql, args).fetchone()
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(str(exc)) from exc

    def _query_all(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._conn().execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(str(exc)) from exc

    def _execute(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            try:
                return self._conn().execute(sql, args).rowcount
            except sqlite3.DatabaseError as exc:
                raise StoreUnavailable(str(exc)) from exc


def _value_error(exc: OverflowError | UnicodeEncodeError) -> str:
    """What was wrong, without the value (it may be payload)."""
    if isinstance(exc, UnicodeEncodeError):
        return "text that is not valid UTF-8 (a lone surrogate); SQLite stores TEXT as UTF-8"
    return "an integer beyond SQLite's 64-bit INTEGER"


def _text_column(value: str) -> str:
    """An informational TEXT column's value, storable whatever the id holds (the exact id is in `doc`)."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _without_ledgers(session_id: str, runs: list[SessionChanges]) -> SessionChanges:
    """All runs' parked, idempotency and quarantine rows as one change (no ledger), for one statement each."""
    return SessionChanges(
        session_id,
        None,
        [r for run in runs for r in run.idempotency],
        [p for run in runs for p in run.park],
        [u for run in runs for u in run.unpark],
        [q for run in runs for q in run.quarantine],
    )
