"""One scenario list, two clients: the conformance behaviours every official client must see alike.

Each scenario is implemented once per client: in Python (tests/emulator/test_conformance_python.py,
azure-servicebus) and in Node (tests/emulator/node/conformance.cjs, @azure/service-bus). The harness
creates the scenario's entities with unique names and hands them to the implementation by role
("queue", ...). tests/emulator/test_conformance_node.py asserts that both clients implement exactly
these ids, so a scenario cannot be added for one client only.

Topics: `Entity(kind="topic", props={"Subscriptions": [...]})` (an official Config.json topic entry);
the implementation gets the topic's name and addresses subscriptions by their configured names.
A scenario one client cannot express carries `not_applicable={"python": "why"}`; the coverage test
then requires that client to *not* implement it, and the docs table shows the reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entity:
    """An entity a scenario needs: its kind and its properties (QueueProperties field names)."""

    kind: str = "queue"
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """One behaviour, checked by every client."""

    id: str
    title: str
    entities: dict[str, Entity]
    not_applicable: dict[str, str] = field(default_factory=dict)  # client -> reason


SESSION_QUEUE = {"queue": Entity(props={"requires_session": True, "lock_duration": 30.0})}
PLAIN_QUEUE = {"queue": Entity(props={"lock_duration": 30.0})}

# topic entities: props is an official Config.json `Topics[]` entry without its Name
FILTER_SUBSCRIPTIONS = [
    {"Name": "all", "Properties": {"LockDuration": "PT30S"}},
    {
        "Name": "red",
        "Properties": {"LockDuration": "PT30S"},
        "Rules": [
            {
                "Name": "r",
                "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": "color = 'red'"}},
            }
        ],
    },
    {
        "Name": "urgent",
        "Properties": {"LockDuration": "PT30S"},
        "Rules": [
            {
                "Name": "u",
                "Properties": {"FilterType": "Correlation", "CorrelationFilter": {"Label": "urgent"}},
            }
        ],
    },
]
SESSION_SUBSCRIPTIONS = [
    {"Name": "sessions", "Properties": {"LockDuration": "PT30S", "RequiresSession": True}}
]

# "uamqp": the Python implementations again, through azure-servicebus's uamqp transport (a side venv,
# tests/emulator/test_conformance_uamqp.py); it can only skip a scenario, never add one
CLIENTS = ("python", "node", "uamqp")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "session-next-available",
        "Next-available receivers each lock a different session; FIFO within a session",
        SESSION_QUEUE,
    ),
    Scenario(
        "session-specific", "Accepting a session by id yields only that session's messages", SESSION_QUEUE
    ),
    Scenario(
        "session-cannot-be-locked",
        "Accepting a session another receiver holds fails at once (session-cannot-be-locked); "
        "the holder keeps it",
        SESSION_QUEUE,
    ),
    Scenario("session-state", "Session state set, read back, kept across receivers, cleared", SESSION_QUEUE),
    Scenario("session-renew", "Renewing the session lock moves locked-until forward", SESSION_QUEUE),
    Scenario(
        "session-list",
        "Listing sessions pages to the end (120 sessions) and includes a state-only session",
        SESSION_QUEUE,
        not_applicable={
            "uamqp": "azure-servicebus's uamqp transport builds list_queue_sessions' management client on "
            "the bare namespace address (amqps://host, no path), which uamqp refuses before connecting "
            "(`Invalid Address`), against Azure as here"
        },
    ),
    Scenario(
        "session-race",
        "Two receivers racing for one session id: exactly one wins, the other gets session-cannot-be-locked",
        SESSION_QUEUE,
    ),
    Scenario(
        "session-release-accept-by-id",
        "A session receiver closes holding a locked message; the session can be accepted by id at once "
        "and the message comes back with its delivery count incremented",
        SESSION_QUEUE,
    ),
    Scenario(
        "abandon-count",
        "Abandon increments the delivery count each time (session message)",
        SESSION_QUEUE,
    ),
    Scenario(
        "abandon-properties",
        "Abandon with properties to modify changes the message's application properties (over the "
        "receive link, and over $management for a deferred message)",
        PLAIN_QUEUE,
        not_applicable={"python": "azure-servicebus has no properties_to_modify on abandon_message"},
    ),
    Scenario("defer", "Deferred message is only reachable by sequence number, then completes", PLAIN_QUEUE),
    Scenario(
        "dead-letter",
        "Dead-letter with reason and description; both readable from the dead-letter queue",
        PLAIN_QUEUE,
    ),
    Scenario("peek", "Peek returns messages in sequence order without locking them", PLAIN_QUEUE),
    Scenario(
        "schedule-cancel",
        "Scheduled message arrives at its time with its scheduled time; a cancelled one never does",
        PLAIN_QUEUE,
    ),
    Scenario(
        "lock-expiry-max-delivery",
        "An expired lock increments the delivery count; MaxDeliveryCount dead-letters with "
        "MaxDeliveryCountExceeded",
        {"queue": Entity(props={"lock_duration": 1.0, "max_delivery_count": 2})},
    ),
    Scenario(
        "close-link-holding-locks",
        "A receiver closes its link holding locked messages: they stay locked until the lock expires, then "
        "come back with the delivery count incremented",
        {"queue": Entity(props={"lock_duration": 2.0})},
    ),
    Scenario("receive-and-delete", "Receive-and-delete removes messages on delivery (no lock)", PLAIN_QUEUE),
    Scenario(
        "properties-round-trip",
        "System properties, typed application properties and broker annotations round trip",
        PLAIN_QUEUE,
    ),
    Scenario(
        "large-message",
        "A 250 KiB body (near Standard's 256 KB message limit) round trips byte for byte",
        PLAIN_QUEUE,
    ),
    Scenario(
        "topic-fan-out-filters",
        "A topic copies each message to every subscription whose rules match: $Default (all), a SQL "
        "filter, a correlation filter; the copies share the sequence number",
        {"topic": Entity(kind="topic", props={"Subscriptions": FILTER_SUBSCRIPTIONS})},
    ),
    Scenario(
        "topic-session-subscription",
        "A session-enabled subscription: specific session, cannot-be-locked while held, state, "
        "next-available gets the other session",
        {"topic": Entity(kind="topic", props={"Subscriptions": SESSION_SUBSCRIPTIONS})},
    ),
)

BY_ID = {s.id: s for s in SCENARIOS}


# a client that runs another client's implementations cannot run what that one lacks
RUNS_IMPLEMENTATIONS_OF = {"uamqp": "python"}


def applicable(client: str) -> list[str]:
    """Scenario ids the client must implement (or, for uamqp, run)."""
    skips = {client, RUNS_IMPLEMENTATIONS_OF.get(client, client)}
    return [s.id for s in SCENARIOS if not skips & set(s.not_applicable)]


def create_entities(emulator: Any, scenario: Scenario) -> dict[str, str]:
    """Create a scenario's entities on the test emulator (uniquely named); role -> entity name."""
    names: dict[str, str] = {}
    for role, entity in scenario.entities.items():
        if entity.kind == "queue":
            names[role] = emulator.make_queue(**entity.props)
        elif entity.kind == "topic":  # deleted like a queue (delete_queue drops a topic too)
            names[role] = emulator.server.create_topic({"Name": f"t-{uuid.uuid4().hex[:12]}", **entity.props})
        else:
            raise NotImplementedError(f"entity kind {entity.kind!r} is not supported by the harness")
    return names
