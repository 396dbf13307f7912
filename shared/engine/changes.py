"""Merging the changes of a batch of one session's messages into as few writes as the store allows.

Each message of a batch yields its own `SessionChanges` (at most one stream's ledger). A batch commit
writes them together; `coalesce` merges them per stream into *runs*: one ledger write per run (its last
state), parks and unparks of the same parked row inside a run cancel out, and idempotency/quarantine
upserts travel with the run they belong to. Without a limit every stream is one run; a store with a
transaction size limit passes `fits`, and a stream whose changes do not fit in one transaction is split
into consecutive runs, each a state the single-message path could also have written (so a crash
between two of them leaves exactly what a crash between two single-message commits would).

Runs of one stream carry the ledger version read before the batch; a store writing several runs of
the same stream chains them with `chain_version` (the next run's expected version is the one the
previous run wrote).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.engine.records import SessionChanges

Fits = Callable[[SessionChanges], bool]


def coalesce(units: Sequence[SessionChanges], fits: Fits | None = None) -> list[SessionChanges]:
    """Merge per-message changes (in message order) into per-stream runs, in order of first appearance.

    Quarantine-only changes (bodies rejected before any stream was touched) are upserts that depend on
    nothing: they are gathered into one leading change without a ledger.
    """
    loose = SessionChanges(units[0].session_id) if units else None
    runs: list[SessionChanges] = []
    open_run: dict[str, int] = {}  # stream key -> index of its latest run in `runs`
    for unit in units:
        if unit.is_empty:
            continue
        if unit.ledger is None and not unit.park and not unit.unpark:
            assert loose is not None
            loose.idempotency.extend(unit.idempotency)
            loose.quarantine.extend(unit.quarantine)
            continue
        if unit.ledger is None:  # park/unpark without a ledger: never produced by decide; keep it alone
            runs.append(_copy(unit))
            continue
        key = unit.ledger.stream_key
        at = open_run.get(key)
        merged = _merge(runs[at], unit) if at is not None else None
        if at is not None and merged is not None and (fits is None or fits(merged)):
            first, last = runs[at].ledger, merged.ledger
            assert first is not None and last is not None
            last.version = first.version  # what the run's one write must find
            runs[at] = merged
            continue
        open_run[key] = len(runs)
        runs.append(_copy(unit))
    if loose is not None and not loose.is_empty:
        runs.insert(0, loose)
    return _latest_records(runs, units)


def _latest_records(runs: list[SessionChanges], units: Sequence[SessionChanges]) -> list[SessionChanges]:
    """An upsert written twice in one batch (the same message quarantined on release and again when it is
    redelivered inside the batch) must end as the one-by-one path leaves it: its last version. Every
    occurrence carries that last version, so whichever a store writes first (the earliest: before any run
    that needs it) the row ends right, and a second write of it changes nothing."""
    quarantine = {q.id: q for unit in units for q in unit.quarantine}
    idempotency = {(r.stream_key, r.sequence): r for unit in units for r in unit.idempotency}
    for run in runs:
        run.quarantine = list({q.id: quarantine[q.id] for q in run.quarantine}.values())
        run.idempotency = list(
            {
                (r.stream_key, r.sequence): idempotency[(r.stream_key, r.sequence)] for r in run.idempotency
            }.values()
        )
    return runs


def chain_version(run: SessionChanges, written: dict[str, str | None]) -> None:
    """Before writing `run`: expect the version an earlier run of this batch wrote for its stream."""
    if run.ledger is not None and run.ledger.stream_key in written:
        run.ledger.version = written[run.ledger.stream_key]


def _copy(unit: SessionChanges) -> SessionChanges:
    return SessionChanges(
        unit.session_id,
        unit.ledger,
        list(unit.idempotency),
        list(unit.park),
        list(unit.unpark),
        list(unit.quarantine),
    )


def _merge(run: SessionChanges, unit: SessionChanges) -> SessionChanges | None:
    """`run` then `unit` as one change, or None when they cannot be one (a row parked after its unpark)."""
    parked = {(p.stream_key, p.sequence): p for p in run.park}
    unparked = list(run.unpark)
    for key in unit.unpark:
        if key in parked:
            del parked[key]  # parked and released inside the run: the row is never written
        else:
            unparked.append(key)
    for p in unit.park:
        if (p.stream_key, p.sequence) in unparked or (p.stream_key, p.sequence) in parked:
            return None
        parked[(p.stream_key, p.sequence)] = p
    return SessionChanges(
        run.session_id,
        unit.ledger,
        [*run.idempotency, *unit.idempotency],
        list(parked.values()),
        unparked,
        [*run.quarantine, *unit.quarantine],
    )
