"""Optional SQLite persistence (`--data`): messages, session state and the duplicate-detection history
survive restarts, locks do not.

Writes are coalesced per event-loop batch and committed before any acknowledgement for that batch
leaves the server, so an accepted send is on disk (WAL, synchronous=FULL) before the client hears
about it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .broker import now_ms
from .message import Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    entity TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (entity, seq)
);
CREATE TABLE IF NOT EXISTS entities (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    definition TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session_state (
    entity TEXT NOT NULL,
    session_id TEXT NOT NULL,
    state BLOB,
    PRIMARY KEY (entity, session_id)
);
CREATE TABLE IF NOT EXISTS message_ids (
    entity TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (entity, message_id)
);
"""
# Expired duplicate-detection entries are deleted once every this many commits (and at start).
_PRUNE_EVERY = 512


class SqliteStore:
    """Store implementation backed by one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) the database."""
        p = Path(path)
        if p.is_dir() or (not p.suffix and not p.exists()):
            p.mkdir(parents=True, exist_ok=True)
            p = p / "emulator.sqlite3"
        self.path = p
        self.db = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._pending: dict[tuple[str, int], Message | None] = {}
        self._states: dict[tuple[str, str], bytes | None] = {}
        self._message_ids: dict[tuple[str, str], int] = {}
        self._commits = 0

    def save(self, entity: str, message: Message) -> None:
        """Remember the latest version; written at the next commit."""
        self._pending[(entity.lower(), message.seq)] = message

    def delete(self, entity: str, seq: int) -> None:
        """Mark for deletion at the next commit."""
        self._pending[(entity.lower(), seq)] = None

    def save_session_state(self, entity: str, session_id: str, state: bytes | None) -> None:
        """Session state, written at the next commit."""
        self._states[(entity.lower(), session_id)] = state

    def save_message_id(self, entity: str, message_id: str, expires_ms: int) -> None:
        """A duplicate-detection entry, written at the next commit (with the message it came with)."""
        self._message_ids[(entity.lower(), message_id)] = expires_ms

    def commit(self) -> None:
        """Durably write everything pending in one transaction."""
        if not self._pending and not self._states and not self._message_ids:
            return
        pending, self._pending = self._pending, {}
        states, self._states = self._states, {}
        message_ids, self._message_ids = self._message_ids, {}
        self._commits += 1
        upserts = [(e, s, m.to_record()) for (e, s), m in pending.items() if m is not None]
        deletes = [(e, s) for (e, s), m in pending.items() if m is None]
        cur = self.db.cursor()
        cur.execute("BEGIN")
        try:
            if deletes:
                cur.executemany("DELETE FROM messages WHERE entity=? AND seq=?", deletes)
            if upserts:
                cur.executemany("INSERT OR REPLACE INTO messages (entity, seq, data) VALUES (?,?,?)", upserts)
            for (e, sid), st in states.items():
                if st is None:
                    cur.execute("DELETE FROM session_state WHERE entity=? AND session_id=?", (e, sid))
                else:
                    cur.execute(
                        "INSERT OR REPLACE INTO session_state (entity, session_id, state) VALUES (?,?,?)",
                        (e, sid, st),
                    )
            if message_ids:
                cur.executemany(
                    "INSERT OR REPLACE INTO message_ids (entity, message_id, expires_ms) VALUES (?,?,?)",
                    [(e, mid, exp) for (e, mid), exp in message_ids.items()],
                )
            if self._commits % _PRUNE_EVERY == 0:
                cur.execute("DELETE FROM message_ids WHERE expires_ms < ?", (now_ms(),))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def load_messages(self) -> Iterator[tuple[str, Message]]:
        """Every stored message, in sequence order."""
        for entity, data in self.db.execute("SELECT entity, data FROM messages ORDER BY seq"):
            yield entity, Message.from_record(bytes(data))

    def load_session_states(self) -> Iterator[tuple[str, str, bytes]]:
        """Every stored session state."""
        for entity, sid, state in self.db.execute("SELECT entity, session_id, state FROM session_state"):
            yield entity, sid, bytes(state)

    def load_message_ids(self) -> Iterator[tuple[str, str, int]]:
        """Every unexpired duplicate-detection entry, oldest first (expired ones are deleted)."""
        self.db.execute("DELETE FROM message_ids WHERE expires_ms < ?", (now_ms(),))
        query = "SELECT entity, message_id, expires_ms FROM message_ids ORDER BY expires_ms"
        yield from self.db.execute(query)

    # ------------------------------------------------------------------ entities (admin API)
    def save_entity(self, path: str, kind: str, definition: dict[str, Any]) -> None:
        """Create or replace an entity's definition (written at once: admin calls are rare)."""
        self.db.execute(
            "INSERT OR REPLACE INTO entities (path, kind, definition) VALUES (?,?,?)",
            (path.lower(), kind, json.dumps(definition)),
        )

    def delete_entity(self, path: str) -> None:
        """Forget an entity, everything under it (subscriptions of a topic) and their messages."""
        key = path.lower()
        # its dead-letter queue and, for a topic, its subscriptions (and theirs); not a queue named
        # "<path>/x", which is another entity
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self.commit()  # what is pending is written first, then deleted with the rest
        for table in ("entities", "messages", "session_state"):
            column = "path" if table == "entities" else "entity"
            self.db.execute(
                f"DELETE FROM {table} WHERE {column} IN (?, ?) OR {column} LIKE ? ESCAPE '\\'",
                (key, key + "/$deadletterqueue", escaped + "/subscriptions/%"),
            )

    def load_entities(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every saved (path, kind, definition)."""
        rows = self.db.execute("SELECT path, kind, definition FROM entities ORDER BY path")
        return [(path, kind, json.loads(d)) for path, kind, d in rows]

    def close(self) -> None:
        """Flush and close."""
        self.commit()
        self.db.close()
