"""Chaos at make-test scale: the local host (a subprocess) is SIGKILLed K times mid-processing and
restarted; afterwards nothing is lost, nothing applied twice, every order in sequence order.

The bigger run is `python -m bench.chaos --messages 5000 --sessions 50 --kills 10` (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.chaos import LOCK_SECONDS, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

MESSAGES, SESSIONS, KILLS = 300, 10, 3


@pytest.mark.parametrize("cardinality", ["one", "many"])
def test_host_killed_at_random_moments_loses_nothing_and_applies_nothing_twice(
    servicebus_emulator: Any, fresh_queue: Any, tmp_path: Path, cardinality: str
) -> None:
    queue = fresh_queue(
        requires_session=True,
        requires_duplicate_detection=True,
        max_delivery_count=10,
        lock_duration=LOCK_SECONDS,
    )
    report = run_chaos(
        servicebus_emulator.connection_string,
        queue,
        lambda: (servicebus_emulator.active_count(queue), servicebus_emulator.dead_letter_count(queue)),
        tmp_path,
        messages=MESSAGES,
        # batch mode takes a whole small session in one invocation: fewer, longer sessions give the kills
        # batches to land between (one session at a time per host, as in Azure)
        sessions=SESSIONS if cardinality == "one" else 3,
        kills=KILLS,
        seed=3,
        deadline_s=180,
        say=print,
        cardinality=cardinality,
    )
    print("\n".join(report.lines()))
    assert report.kills_landed >= 1, "no kill landed mid-processing: the test proved nothing"
    assert report.lost_steps == 0 and report.double_applied == 0 and report.out_of_order == 0
    assert report.wrong_orders == []
    assert report.poison_missing == []
    assert (report.left_in_queue, report.dead_lettered) == (0, 0)
    assert report.ok
