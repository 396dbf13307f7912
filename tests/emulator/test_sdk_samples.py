"""The azure-servicebus package's own samples, run unmodified against the emulator.

At test time the samples come from the sdist of the *installed* azure-servicebus version
(`pip download --no-deps --no-binary :all:` into .local/; nothing of them is committed). Each sample
runs in its own process with its own entities (a queue, a session queue, a topic with a subscription,
all named after the sample, declared in a temporary official-format Config.json), so samples run
concurrently without taking each other's messages. `sdk_samples/sitecustomize.py` points clients built
from a namespace + credential at the emulator's connection string (see its docstring); the samples
that read SERVICEBUS_CONNECTION_STR get it directly.

A sample passes when it exits 0 within its timeout, writes no traceback, prints what it says it does
(the expected lines below) and leaves its entities as its own code implies (e.g. the dead-letter
correction sample leaves nothing behind). The administration samples (mgmt_*, topic_subscription_with_
rule_operations) call the emulator's management endpoint over HTTPS, trusting its CA (the shim passes
`connection_verify`). Samples needing Entra ID, a proxy or a custom TLS endpoint are out of scope
(OUT_OF_SCOPE, documented in docs/emulator.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.servicebus import __version__ as SB_VERSION

from devstack.emulator.server import EmulatorServer

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".local" / "sb-samples"
SHIM_DIR = Path(__file__).resolve().parent / "sdk_samples"
TIMEOUT_S = float(os.environ.get("SB_SAMPLE_TIMEOUT", "150"))
WORKERS = int(os.environ.get("SB_SAMPLE_WORKERS", "8"))

OUT_OF_SCOPE = {
    "proxy": "HTTP proxy / AMQP over WebSockets",
    "client_identity_authentication": "Entra ID (EnvironmentCredential)",
    "connection_to_custom_endpoint_address": "placeholder custom endpoint, TLS gateway with its own CA",
}

# Receive-only samples get messages to receive: SEED messages in their queue (or subscription).
SEED = ["seed-0", "seed-1", "seed-2"]
SEEDED_QUEUE = {"receive_queue", "receive_iterator_queue", "receive_peek"}
SEEDED_SUBSCRIPTION = {"receive_subscription"}
# ...and list_sessions gets sessions to list (its subscription requires sessions).
SEED_SESSIONS = ["seed-a", "seed-b"]
SEEDED_SESSIONS = {"list_sessions"}

# Samples that receive with a message iterator and no max_wait_time wait for more messages forever
# (against Service Bus too): they pass when, stopped after this many seconds, they had done their work.
RUNS_UNTIL_STOPPED = {"receive_iterator_queue": 25.0, "failure_and_recovery": 25.0}

# Lines a sample prints when it did its job; every sample must also exit 0 (or be stopped, see
# RUNS_UNTIL_STOPPED) with no traceback on stderr. A line is required only from the variants (sync or
# async) whose source contains it: the async samples print less.
EXPECT: dict[str, list[str]] = {
    "receive_queue": [*SEED, "Receive is done"],
    "receive_subscription": [*SEED, "Receive is done"],
    "receive_iterator_queue": SEED,
    "receive_peek": [*SEED[:2], "Receive is done"],  # peeks max_message_count=2
    "failure_and_recovery": ["Sending", "Receiving", *[f"Data {i}" for i in range(10)]],
    "receive_deadlettered_messages": [
        "dead lettering messages",
        "receiving deadlettered messages",
        "Receive is done",
    ],
    "receive_deferred_message_queue": ["Deferring msg", "Completing deferred msg", "Receive is done"],
    "auto_lock_renew": [
        "Register messages into AutoLockRenewer done",
        "Intentionally failed to renew lock",
        "Messages cannot be settled if they have timed out",
    ],
    "session_send_receive": ["Send message is done", "Receive is done"],
    "send_queue": ["Send message is done"],
    "send_topic": ["Send message is done"],
    "list_sessions": [
        *[f"Queue session: {sid}" for sid in SEED_SESSIONS],
        *[f"Subscription session: {sid}" for sid in SEED_SESSIONS],
    ],
    "mgmt_queue": ["-- Create Queue", "-- List Queues", "-- Get and Update Queue", "-- Delete Queue"],
    "mgmt_topic": ["-- Create Topic", "-- List Topics", "-- Get and Update Topic", "-- Delete Topic"],
    "mgmt_subscription": [
        "-- Create Subscription",
        "-- Get and Update Subscription",
        "-- Delete Subscription",
    ],
    "mgmt_rule": ["-- Create Rule", "-- Create Rule with SQL Filter", "-- List Rules", "-- Delete Rule"],
}
# Lines built with format(): required from both variants (checked as printed, not against the source).
# The rules sample sends 9 messages; its subscriptions' filters pass 9, 3 (Red), 3 (Blue) and 1.
PRINTED: dict[str, list[str]] = {
    "mgmt_queue": ["Active Message Count: 0", "Dead-letter Message Count: 0"],
    "topic_subscription_with_rule_operations": [
        "'9' Messages From Subscription: sb-allmsgs-sub",
        "'3' Messages From Subscription: sb-sqlfilteronly-sub",
        "'3' Messages From Subscription: sb-sqlfilteraction-sub",
        "'1' Messages From Subscription: sb-corrfiltersub",
        "Color Property = BlueProcessed, Correlation ID = important",
        "Rule ImportantCorrelationRule; Filter: CorrelationRuleFilter",
    ],
}

# Entities that must be empty afterwards because the sample settles everything it reads.
EMPTY_AFTER = {
    "receive_queue": ["queue"],
    "receive_iterator_queue": ["queue"],
    "receive_subscription": ["subscription"],
    "failure_and_recovery": ["queue"],
    "receive_deferred_message_queue": ["queue"],
}
# ...and entities that must still hold the seed (peeking does not consume).
SEED_KEPT = {"receive_peek": "queue"}


# The AutoLockRenewer samples renew every 0.5 s with the short test lock; now and then a renewal races
# the sample closing its receiver (the client detaches its own management link mid-request, the SDK
# logs the ValueError below with a traceback and the sample carries on). Only that logged record is
# tolerated, and only there: the expected lines must still all be printed.
TOLERATED_STDERR = {
    "auto_lock_renew": re.compile(
        r"Unexpected error occurred \(ValueError\('Management Operation error occurred\.'\)\)\. "
        r"Handler shutting down\.\nTraceback \(most recent call last\):\n(?:[ \t].*\n)*"
        r"ValueError: Management Operation error occurred\.\n"
    )
}


def _without_tolerated(stem: str, stderr: str) -> str:
    rx = TOLERATED_STDERR.get(stem)
    return rx.sub("", stderr) if rx else stderr


# Samples that take a minute or more (sleeps, many 5 s receive waits): started first.
SLOW = {"auto_lock_renew", "sample_code_servicebus", "session_pool_receive"}


@dataclass
class Result:
    """One sample run."""

    sample: str
    rc: int | None
    seconds: float
    stdout: str
    stderr: str


def _stem(path: Path) -> str:
    return path.stem.removesuffix("_async")


_PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]


def _samples_dir() -> Path:
    target = CACHE / SB_VERSION
    samples = target / f"azure_servicebus-{SB_VERSION}" / "samples"
    if samples.is_dir():
        return samples
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*_PIP_DOWNLOAD, "--dest", str(target), f"azure-servicebus=={SB_VERSION}"],
        check=True,
        timeout=300,
    )
    [sdist] = list(target.glob("azure_servicebus-*.tar.gz")) or list(target.glob("azure-servicebus-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/samples/" in m.name and m.name.endswith(".py")]
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links and absolute paths
            tar.extractall(target, members=members, filter="data")
        else:
            tar.extractall(target, members=[m for m in members if m.isfile() and ".." not in m.name])
    return samples


def _all_samples() -> list[Path]:
    samples = _samples_dir()
    return sorted([*samples.glob("sync_samples/*.py"), *samples.glob("async_samples/*.py")])


def _prefix(i: int) -> str:
    return f"s{i:02d}"


def _entities(
    prefix: str, lock: str, session_subscription: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    common = {"LockDuration": lock, "MaxDeliveryCount": 10, "DefaultMessageTimeToLive": "PT1H"}
    queues = [
        {"Name": f"{prefix}-queue", "Properties": {**common, "RequiresSession": False}},
        {"Name": f"{prefix}-sessions", "Properties": {**common, "RequiresSession": True}},
    ]
    topics = [
        {
            "Name": f"{prefix}-topic",
            "Properties": {"DefaultMessageTimeToLive": "PT1H"},
            "Subscriptions": [
                {"Name": "sub", "Properties": {**common, "RequiresSession": session_subscription}}
            ],
        }
    ]
    return queues, topics


def _run(sample: Path, prefix: str, conn: str, admin: tuple[str, str]) -> Result:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), os.environ.get("PYTHONPATH", "")]),
        "SERVICEBUS_CONNECTION_STR": conn,
        "SERVICEBUS_FULLY_QUALIFIED_NAMESPACE": "sbemulatorns.servicebus.windows.net",
        "SERVICEBUS_QUEUE_NAME": f"{prefix}-queue",
        "SERVICEBUS_SESSION_QUEUE_NAME": f"{prefix}-sessions",
        "SERVICEBUS_TOPIC_NAME": f"{prefix}-topic",
        "SERVICEBUS_SUBSCRIPTION_NAME": "sub",
        "SERVICEBUS_SESSION_ID": "sample-session",
        "SERVICEBUS_SAS_POLICY": "RootManageSharedAccessKey",
        "SERVICEBUS_SAS_KEY": "local",
        "SB_SAMPLE_SLEEP_SCALE": "0.2",
        "SERVICEBUS_ADMIN_ENDPOINT": admin[0],
        "SERVICEBUS_ADMIN_CA": admin[1],
    }
    env["PYTHONUNBUFFERED"] = "1"
    start = time.monotonic()
    try:
        p = subprocess.run(
            [sys.executable, str(sample)],
            env=env,
            cwd=sample.parent,
            capture_output=True,
            text=True,
            timeout=RUNS_UNTIL_STOPPED.get(_stem(sample), TIMEOUT_S),
        )
        return Result(sample.name, p.returncode, time.monotonic() - start, p.stdout, p.stderr)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Result(sample.name, None, time.monotonic() - start, out, err)


def _entity(prefix: str, kind: str) -> str:
    return {"queue": f"{prefix}-queue", "sessions": f"{prefix}-sessions"}.get(
        kind, f"{prefix}-topic/Subscriptions/sub"
    )


def _seed(conn: str, samples: list[Path], prefixes: list[str]) -> None:
    from azure.servicebus import ServiceBusClient, ServiceBusMessage

    with ServiceBusClient.from_connection_string(conn) as c:
        for s, prefix in zip(samples, prefixes, strict=True):
            if _stem(s) in SEEDED_QUEUE:
                with c.get_queue_sender(f"{prefix}-queue") as snd:
                    snd.send_messages([ServiceBusMessage(b) for b in SEED])
            if _stem(s) in SEEDED_SESSIONS:
                for entity, sender in (
                    (f"{prefix}-sessions", c.get_queue_sender),
                    (f"{prefix}-topic", c.get_topic_sender),
                ):
                    with sender(entity) as snd:
                        snd.send_messages(
                            [ServiceBusMessage("seed", session_id=sid) for sid in SEED_SESSIONS]
                        )
            if _stem(s) in SEEDED_SUBSCRIPTION:
                with c.get_topic_sender(f"{prefix}-topic") as snd:
                    snd.send_messages([ServiceBusMessage(b) for b in SEED])


@dataclass
class Run:
    """All in-scope samples' results plus the emulator they ran against."""

    results: dict[str, Result]
    prefixes: dict[str, str]
    sources: dict[str, str]
    server: EmulatorServer


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Run every in-scope sample concurrently against one emulator (module scope: one run)."""
    samples = [s for s in _all_samples() if _stem(s) not in OUT_OF_SCOPE]
    prefixes = {
        s.name + ("@async" if "async_samples" in str(s) else ""): _prefix(i) for i, s in enumerate(samples)
    }
    queues: list[dict[str, Any]] = []
    topics: list[dict[str, Any]] = []
    for s, prefix in zip(samples, prefixes.values(), strict=True):
        # auto_lock_renew sleeps (shortened to 10 s) while holding locks: a 5 s lock (the official
        # emulator's minimum) makes renewal necessary
        lock = "PT5S" if _stem(s) == "auto_lock_renew" else "PT1M"
        q, t = _entities(prefix, lock, session_subscription=_stem(s) in SEEDED_SESSIONS)
        queues += q
        topics += t
    doc = {
        "UserConfig": {
            "Namespaces": [{"Name": "sbemulatorns", "Queues": queues, "Topics": topics}],
            "Logging": {"Type": "File"},
        }
    }
    server = EmulatorServer(doc, admin_port=0, cert_dir=tmp_path_factory.mktemp("certs"))
    with server, ThreadPoolExecutor(WORKERS) as pool:
        admin = (f"{server.host}:{server.admin_port}", str(server.admin_ca_path))
        _seed(server.connection_string, samples, list(prefixes.values()))
        # the long ones first, so the run takes about as long as the slowest sample
        jobs = sorted(zip(samples, prefixes.items(), strict=True), key=lambda j: _stem(j[0]) not in SLOW)
        futures = {
            key: pool.submit(_run, s, prefix, server.connection_string, admin) for s, (key, prefix) in jobs
        }
        results = {key: f.result() for key, f in futures.items()}
        summary = {k: {"rc": r.rc, "seconds": round(r.seconds, 1)} for k, r in results.items()}
        (CACHE / "last-run.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
        sources = {key: s.read_text() for s, key in zip(samples, prefixes, strict=True)}
        yield Run(results, prefixes, sources, server)


def _keys() -> list[str]:
    try:
        samples = _all_samples()
    except Exception:  # download failed: the fixture will report it
        return ["(samples unavailable)"]
    return [s.name + ("@async" if "async_samples" in str(s) else "") for s in samples]


@pytest.mark.timeout(900)  # the first test also waits for the whole concurrent run (module fixture)
@pytest.mark.parametrize("key", _keys())
def test_sample(sample_run: Run, key: str) -> None:
    stem = key.split("@")[0].removesuffix(".py").removesuffix("_async")
    if stem in OUT_OF_SCOPE:
        pytest.skip(f"out of scope: {OUT_OF_SCOPE[stem]}")
    r = sample_run.results[key]
    detail = f"{key}: rc={r.rc} in {r.seconds:.1f}s\n--- stdout\n{r.stdout[-3000:]}"
    detail += f"\n--- stderr\n{r.stderr[-3000:]}"
    if stem in RUNS_UNTIL_STOPPED:
        assert r.rc is None, f"expected to still be receiving when stopped\n{detail}"
    else:
        assert r.rc == 0, detail
    assert "Traceback" not in _without_tolerated(stem, r.stderr), detail
    source = sample_run.sources[key]
    for line in EXPECT.get(stem, []):
        if line in SEED or line in source:
            assert line in r.stdout, f"missing {line!r}\n{detail}"
    for line in PRINTED.get(stem, []):
        assert line in r.stdout, f"missing {line!r}\n{detail}"
    prefix = sample_run.prefixes[key]
    for kind in EMPTY_AFTER.get(stem, []):
        counts = sample_run.server.queue_counts(_entity(prefix, kind))
        assert counts["total"] == 0, (kind, counts, detail)
    if stem in SEED_KEPT:
        assert sample_run.server.queue_counts(_entity(prefix, SEED_KEPT[stem]))["active"] == len(SEED)
