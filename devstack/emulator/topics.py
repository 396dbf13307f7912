"""Topics and subscriptions, built on the queue machinery.

A subscription *is* a queue (sessions, locks, DLQ, defer, peek, schedule, state, forwarding all come
from `Queue`); it only adds its rules and its address `<topic>/Subscriptions/<name>`. A topic is the
send side of a queue: it accepts sends and schedules, and fans a copy of each message out to every
subscription whose rules match. Every copy keeps the topic's sequence number (as on Service Bus,
where the sequence number is assigned by the topic), so cancelling a scheduled topic message cancels
it in every subscription.
"""

from __future__ import annotations

import dataclasses

from .broker import INVALID_FIELD, Broker, BrokerError, Queue, now_ms
from .config import QueueProperties, RuleConfig, TopicConfig, TopicProperties
from .filters import MessageView, Rule, compile_rule, default_rules
from .message import Message

SUBSCRIPTIONS_SEGMENT = "/subscriptions/"
DEFAULT_RULE = RuleConfig("$Default", "True", None)


def add_topic(broker: Broker, config: TopicConfig) -> Topic:
    """Create a topic with its subscriptions on `broker` (kept with its queues: one namespace of names).
    Here rather than on Broker, so broker.py does not import this module, which builds on it."""
    topic = Topic(broker, config.name, config.properties)
    for sub in config.subscriptions:
        topic.add_subscription(sub.name, sub.properties, sub.rules)
    broker.queues[config.name.lower()] = topic
    return topic


def subscription_path(topic: str, subscription: str) -> str:
    """The entity path the SDKs use for a subscription."""
    return f"{topic}/Subscriptions/{subscription}"


class Subscription(Queue):
    """A topic subscription: a queue fed by its topic through its rules."""

    kind = "subscription"

    def __init__(
        self, broker: Broker, topic: Topic, name: str, props: QueueProperties, rules: list[Rule]
    ) -> None:
        """A queue named `<topic>/Subscriptions/<name>` with compiled rules ($Default when none)."""
        super().__init__(broker, subscription_path(topic.name, name), props)
        self.topic = topic
        self.subscription_name = name
        self.rules = rules or default_rules()
        self.rule_configs: tuple[RuleConfig, ...] = (DEFAULT_RULE,)  # as configured (admin API lists them)

    def matching_rules(self, view: MessageView) -> list[Rule]:
        """Rules whose filter matches the message (any match = the subscription gets a copy)."""
        return [r for r in self.rules if r.match(view)]


class Topic(Queue):
    """A send-only entity: duplicate detection, then one copy per matching subscription."""

    kind = "topic"

    def __init__(self, broker: Broker, name: str, props: TopicProperties) -> None:
        """No messages of its own and no dead-letter queue: those live in the subscriptions."""
        super().__init__(
            broker,
            name,
            QueueProperties(
                default_ttl=props.default_ttl,
                requires_duplicate_detection=props.requires_duplicate_detection,
                duplicate_window=props.duplicate_window,
                max_message_size_kib=props.max_message_size_kib,
                max_size_mb=props.max_size_mb,
            ),
        )
        self.topic_props = props
        self.dlq = None
        self.subscriptions: dict[str, Subscription] = {}

    def add_subscription(
        self, name: str, props: QueueProperties, rules: tuple[RuleConfig, ...] = ()
    ) -> Subscription:
        """Create (or replace) a subscription; rules are compiled here."""
        sub = Subscription(self.broker, self, name, props, [compile_rule(r) for r in rules])
        sub.rule_configs = tuple(rules) or (DEFAULT_RULE,)
        self.subscriptions[name.lower()] = sub
        return sub

    def enqueue(
        self, m: Message, now: int | None = None, *, keep_seq: bool = False, seq: int | None = None
    ) -> bool:
        """Fan out. All-or-nothing: a copy a session subscription cannot take fails the whole send."""
        now = now or now_ms()
        view = MessageView.of(m)
        targets = [(s, rules) for s in self.subscriptions.values() if (rules := s.matching_rules(view))]
        for sub, _ in targets:
            if sub.requires_session and not m.session_id:
                raise BrokerError(
                    INVALID_FIELD,
                    f"The SessionId was not set on a message, and it cannot be sent to the entity. "
                    f"Subscription '{sub.subscription_name}' of topic '{self.name}' requires sessions.",
                )
        if self.is_duplicate(m, now):  # after the checks: a refused send's id is not remembered
            return False
        m.seq = self.broker.next_seq()
        for sub, rules in targets:
            copy = dataclasses.replace(m, annotations=list(m.annotations))
            for rule in rules:
                rule.apply_action(copy, view)
            sub.enqueue(copy, now, seq=m.seq)
        return True

    def cancel_scheduled(self, seq: int) -> None:
        """Cancel the scheduled copies in every subscription."""
        for sub in self.subscriptions.values():
            sub.cancel_scheduled(seq)

    def peek(self, from_seq: int, count: int, session_id: str | None) -> list[Message]:
        """A topic holds no messages (peek its subscriptions)."""
        return []

    def tick(self, now: int) -> None:
        """Timers of every subscription."""
        for sub in list(self.subscriptions.values()):
            sub.tick(now)

    def stored_bytes(self) -> int:
        """What its subscriptions hold (each copy counted)."""
        return sum(sub.stored_bytes() for sub in self.subscriptions.values())

    def counts(self) -> dict[str, int]:
        """Total over subscriptions (each copy counted)."""
        total: dict[str, int] = {}
        for sub in self.subscriptions.values():
            for k, v in sub.counts().items():
                total[k] = total.get(k, 0) + v
        return total
