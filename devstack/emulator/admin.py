"""The Service Bus management (ATOM) API on the emulator's broker: what ServiceBusAdministrationClient calls.

Routes, verbs and answers follow azure-servicebus's administration client
(azure/servicebus/management/_management_client.py and _generated/operations/_operations.py):

* `GET|PUT|DELETE /{entity}` a queue or topic (PUT creates, or updates with `If-Match: *`),
* `GET /$Resources/queues|topics?$skip=&$top=` lists (an Atom feed; a `rel=next` link pages on),
* `GET|PUT|DELETE /{topic}/subscriptions/{name}`, `GET /{topic}/subscriptions` ,
* `GET|PUT|DELETE /{topic}/subscriptions/{name}/rules/{rule}`, `GET .../rules`,
* `GET /$namespaceinfo`.

Create of an existing entity is 409, update or delete of a missing one 404, a bad body or a value
outside the quota profile (limits.py) 400, a count quota 403 (QuotaExceeded). Every method runs on the
broker's event-loop thread (admin_http.py hands requests over with EmulatorServer.call). Definitions
are saved in the `--data` store; at start Config.json wins over saved definitions of the same name, as
the official emulator documents ("At emulator initialization, settings defined in the configuration
file override any entities previously created or modified using the Service Bus Administration
Client", overview-emulator).
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from . import atom
from .atom import AtomError, Counts, Meta
from .broker import Broker, Queue
from .config import QueueProperties, RuleConfig, TopicConfig, TopicProperties
from .connection import entity_from_address
from .filters import FilterError, compile_rule
from .limits import KIB, LimitError, Limits
from .topics import Subscription, Topic, add_topic

API_VERSION = "2021-05"
_ENTITY_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,258}[A-Za-z0-9])?$")
_CHILD_NAME = re.compile(r"^[A-Za-z0-9$](?:[A-Za-z0-9._-]{0,48}[A-Za-z0-9])?$")
# settings the service reports back but the emulator does not act on
_ECHOED = ("AutoDeleteOnIdle", "EnableBatchedOperations", "Status", "EnablePartitioning", "EnableExpress")


@dataclass
class Response:
    """Status and XML body of one answer."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class AdminError(Exception):
    """Answered as the service's <Error> body."""

    def __init__(self, status: int, detail: str) -> None:
        """Status code and readable detail."""
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _unchangeable(old: Any, new: Any, *fields: tuple[str, str]) -> None:
    """Settings the service fixes at creation (docs/operations.md; update-queue REST reference)."""
    for attr, name in fields:
        if getattr(old, attr) != getattr(new, attr):
            raise AdminError(400, f"{name} cannot be changed on an existing entity")


def _xml(status: int, el: ET.Element) -> Response:
    return Response(
        status, atom.to_xml(el), {"Content-Type": "application/atom+xml;type=entry;charset=utf-8"}
    )


class AdminApi:
    """Entity management over one broker; `store` is the SqliteStore of `--data` (or None)."""

    def __init__(self, broker: Broker, limits: Limits, store: Any = None, namespace: str = "sbemulatorns"):
        """Know the broker, the quota profile and where definitions persist."""
        self.broker = broker
        self.limits = limits
        self.store = store
        self.namespace = namespace
        self.meta: dict[str, Meta] = {}
        self.started = datetime.now(UTC)

    # ------------------------------------------------------------------ dispatch
    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes, host: str
    ) -> Response:
        """Route one request; errors become the service's <Error> answers."""
        try:
            return self._route(method.upper(), path, query, headers, body, host)
        except AdminError as e:
            return _xml(e.status, atom.error(e.status, e.detail))
        except (AtomError, LimitError, FilterError) as e:
            return _xml(400, atom.error(400, str(e)))

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes, host: str
    ) -> Response:
        segments = [s for s in path.split("/") if s]
        base = f"https://{host}"
        update = headers.get("if-match") == "*"
        if segments == ["$namespaceinfo"] and method == "GET":
            info = atom.namespace_info(self.namespace, self.limits.sku, self.started)
            return _xml(
                200, atom.entry(f"{base}/$namespaceinfo", self.namespace, info, self.started, self.started)
            )
        if len(segments) == 2 and segments[0] == "$Resources" and method == "GET":
            kind = {"queues": "queue", "topics": "topic"}.get(segments[1].lower())
            if kind is None:
                raise AdminError(404, f"unknown resource collection {segments[1]!r}")
            return self._list(base, f"$Resources/{segments[1]}", kind, None, query)
        lowered = [s.lower() for s in segments]
        if "subscriptions" in lowered[1:]:
            cut = lowered.index("subscriptions", 1)
            topic, rest = "/".join(segments[:cut]), segments[cut + 1 :]
            if not rest and method == "GET":
                return self._list(base, f"{topic}/subscriptions", "subscription", topic, query)
            if len(rest) == 1:
                return self._subscription(method, base, topic, rest[0], body, update)
            if len(rest) == 2 and rest[1].lower() == "rules" and method == "GET":
                return self._list(
                    base, f"{topic}/subscriptions/{rest[0]}/rules", "rule", (topic, rest[0]), query
                )
            if len(rest) == 3 and rest[1].lower() == "rules":
                return self._rule(method, base, topic, rest[0], rest[2], body, update)
            raise AdminError(404, f"no such resource: /{path}")
        if segments:
            return self._entity(method, base, "/".join(segments), body, update)
        raise AdminError(404, "no such resource: /")

    # ------------------------------------------------------------------ queues and topics
    def _entity(self, method: str, base: str, name: str, body: bytes, update: bool) -> Response:
        existing = self.broker.queues.get(name.lower())
        if method == "GET":
            if existing is None:
                raise AdminError(404, f"Entity '{self.namespace}:{name}' was not found.")
            return _xml(200, self._entity_entry(base, existing))
        if method == "DELETE":
            if existing is None:
                raise AdminError(404, f"Entity '{self.namespace}:{name}' was not found.")
            self.broker.delete_queue(name)
            self._forget(existing.name)
            return Response(200)
        if method != "PUT":
            raise AdminError(405, f"{method} is not supported on an entity")
        if not _ENTITY_NAME.match(name) or "/subscriptions/" in name.lower():
            raise AdminError(400, f"invalid entity name {name!r}")
        is_topic = atom.description_kind(body) == "TopicDescription"
        kind = "topic" if is_topic else "queue"
        if update:
            if existing is None:
                raise AdminError(404, f"Entity '{self.namespace}:{name}' was not found.")
            if existing.kind != kind:
                raise AdminError(400, f"{name!r} is a {existing.kind}, not a {kind}")
        elif existing is not None:
            raise AdminError(409, f"Entity '{self.namespace}:{name}' already exists.")
        elif len(self.broker.queues) >= self.limits.max_entities:
            raise AdminError(
                403, f"QuotaExceeded: a namespace holds at most {self.limits.max_entities} queues and topics"
            )
        if is_topic:
            fields = atom.description(body, "TopicDescription")
            old_t = (
                existing.topic_props
                if isinstance(existing, Topic)
                else TopicProperties(default_ttl=self.limits.max_ttl_s or TopicProperties().default_ttl)
            )
            tprops = self._topic_props(fields, old_t, name)
            if isinstance(existing, Topic):
                _unchangeable(
                    existing.topic_props,
                    tprops,
                    ("requires_duplicate_detection", "RequiresDuplicateDetection"),
                )
                existing.topic_props = tprops
                existing.props = dataclasses.replace(
                    existing.props,
                    default_ttl=tprops.default_ttl,
                    requires_duplicate_detection=tprops.requires_duplicate_detection,
                    duplicate_window=tprops.duplicate_window,
                    max_message_size_kib=tprops.max_message_size_kib,
                    max_size_mb=tprops.max_size_mb,
                )
                entity: Queue = existing
            else:
                entity = add_topic(self.broker, TopicConfig(name, tprops, ()))
        else:
            fields = atom.description(body, "QueueDescription")
            old = existing.props if existing is not None else self._default_queue_props()
            props = self._queue_props(fields, old, f"queue {name!r}")
            if existing is not None:
                _unchangeable(
                    old,
                    props,
                    ("requires_session", "RequiresSession"),
                    ("requires_duplicate_detection", "RequiresDuplicateDetection"),
                )
            entity = self.broker.add_queue(name, props)
        self._touch(entity.name, fields, created=not update)
        self._save(entity)
        return _xml(200 if update else 201, self._entity_entry(base, entity))

    def _entity_entry(self, base: str, q: Queue) -> ET.Element:
        url = f"{base}/{quote(q.name)}?api-version={API_VERSION}"
        meta = self._meta(q.name)
        if isinstance(q, Topic):
            sql = corr = 0
            for s in q.subscriptions.values():
                for r in s.rule_configs:
                    sql += r.filter_type in ("Sql", "True")
                    corr += r.filter_type == "Correlation"
            tprops = dataclasses.replace(q.topic_props, max_size_mb=self._size_mb(q.topic_props.max_size_mb))
            content = atom.topic_description(
                tprops,
                self.counts(q),
                meta,
                len(q.subscriptions),
                (sql, corr),
                self._message_kib(q.topic_props.max_message_size_kib),
            )
        else:
            props = q.props.with_(max_size_mb=self._size_mb(q.props.max_size_mb))
            content = atom.queue_description(
                props, self.counts(q), meta, base, self._message_kib(q.props.max_message_size_kib)
            )
        return atom.entry(url, q.name, content, meta.created, meta.updated)

    # ------------------------------------------------------------------ subscriptions
    def _topic(self, name: str) -> Topic:
        t = self.broker.queues.get(name.lower())
        if not isinstance(t, Topic):
            raise AdminError(404, f"Entity '{self.namespace}:Topic:{name}' was not found.")
        return t

    def _subscription(
        self, method: str, base: str, topic_name: str, name: str, body: bytes, update: bool
    ) -> Response:
        topic = self._topic(topic_name)
        existing = topic.subscriptions.get(name.lower())
        missing = AdminError(404, f"Entity '{self.namespace}:Topic:{topic_name}|{name}' was not found.")
        if method == "GET":
            if existing is None:
                raise missing
            return _xml(200, self._subscription_entry(base, existing))
        if method == "DELETE":
            if existing is None:
                raise missing
            del topic.subscriptions[name.lower()]
            self._forget(existing.name)
            return Response(200)
        if method != "PUT":
            raise AdminError(405, f"{method} is not supported on a subscription")
        if not _CHILD_NAME.match(name):
            raise AdminError(400, f"invalid subscription name {name!r}")
        if update and existing is None:
            raise missing
        if not update and existing is not None:
            raise AdminError(409, f"Entity '{self.namespace}:Topic:{topic_name}|{name}' already exists.")
        if not update and len(topic.subscriptions) >= self.limits.max_subscriptions_per_topic:
            raise AdminError(
                403,
                f"QuotaExceeded: a topic holds at most "
                f"{self.limits.max_subscriptions_per_topic} subscriptions",
            )
        fields = atom.description(body, "SubscriptionDescription")
        old = existing.props if existing is not None else self._default_queue_props()
        props = self._queue_props(fields, old, f"subscription {name!r}", subscription=True)
        props = props.with_(default_ttl=min(props.default_ttl, topic.topic_props.default_ttl))
        if existing is not None:
            if props.requires_session != old.requires_session:
                raise AdminError(400, "RequiresSession cannot be changed on an existing subscription")
            existing.props = props
            if existing.dlq is not None:
                existing.dlq.props = props
            sub = existing
        else:
            rules: tuple[RuleConfig, ...] = ()
            default_rule = fields.get("DefaultRuleDescription")
            if default_rule is not None:
                rfields = {c.tag.rsplit("}", 1)[-1]: c for c in default_rule}
                rname = atom.text(rfields, "Name") or "$Default"
                rules = (self._rule_config(rname, rfields),)
            sub = topic.add_subscription(name, props, rules)
        self._touch(sub.name, fields, created=not update)
        self._save(sub)
        return _xml(200 if update else 201, self._subscription_entry(base, sub))

    def _subscription_entry(self, base: str, s: Subscription) -> ET.Element:
        path = f"{quote(s.topic.name)}/subscriptions/{quote(s.subscription_name)}"
        url = f"{base}/{path}?api-version={API_VERSION}"
        meta = self._meta(s.name)
        content = atom.subscription_description(s.props, self.counts(s), meta, base)
        return atom.entry(url, s.subscription_name, content, meta.created, meta.updated)

    # ------------------------------------------------------------------ rules
    def _rule(
        self, method: str, base: str, topic_name: str, sub_name: str, name: str, body: bytes, update: bool
    ) -> Response:
        sub = self._topic(topic_name).subscriptions.get(sub_name.lower())
        if sub is None:
            raise AdminError(404, f"Entity '{self.namespace}:Topic:{topic_name}|{sub_name}' was not found.")
        index = {r.name.lower(): i for i, r in enumerate(sub.rule_configs)}
        where = f"Rule '{topic_name}|{sub_name}|{name}'"
        if method == "GET":
            if name.lower() not in index:
                raise AdminError(404, f"{where} was not found.")
            return _xml(200, self._rule_entry(base, sub, sub.rule_configs[index[name.lower()]]))
        configs = list(sub.rule_configs)
        if method == "DELETE":
            if name.lower() not in index:
                raise AdminError(404, f"{where} was not found.")
            del configs[index[name.lower()]]
        elif method == "PUT":
            if not _CHILD_NAME.match(name):
                raise AdminError(400, f"invalid rule name {name!r}")
            if update and name.lower() not in index:
                raise AdminError(404, f"{where} was not found.")
            if not update and name.lower() in index:
                raise AdminError(409, f"{where} already exists.")
            rule = self._rule_config(name, atom.description(body, "RuleDescription"))
            if update:
                configs[index[name.lower()]] = rule
            else:
                configs.append(rule)
                self._check_filter_count(sub.topic, rule)
        else:
            raise AdminError(405, f"{method} is not supported on a rule")
        sub.rules = [compile_rule(r) for r in configs]
        sub.rule_configs = tuple(configs)
        self._meta(f"{sub.name}/rules/{name}").updated = datetime.now(UTC)
        self._save(sub)
        if method == "DELETE":
            return Response(200)
        return _xml(200 if update else 201, self._rule_entry(base, sub, rule))

    def _rule_entry(self, base: str, sub: Subscription, rule: RuleConfig) -> ET.Element:
        url = (
            f"{base}/{quote(sub.topic.name)}/subscriptions/{quote(sub.subscription_name)}/rules/"
            f"{quote(rule.name)}?api-version={API_VERSION}"
        )
        meta = self._meta(f"{sub.name}/rules/{rule.name}")
        return atom.entry(
            url, rule.name, atom.rule_description(rule, meta.created), meta.created, meta.updated
        )

    def _rule_config(self, name: str, fields: dict[str, ET.Element]) -> RuleConfig:
        ftype, spec, action, parameters = atom.rule(fields, name)
        rule = RuleConfig(name, ftype, spec, action, parameters or None)
        where = f"rule {name!r}"
        if ftype == "Sql":
            self.limits.check_filter_text(where, spec)
        self.limits.check_filter_text(where, action)
        compile_rule(rule)  # a FilterError is a 400 with its reason
        return rule

    def _check_filter_count(self, topic: Topic, new: RuleConfig) -> None:
        if new.filter_type != "Sql":
            return
        sql = sum(r.filter_type == "Sql" for s in topic.subscriptions.values() for r in s.rule_configs)
        if sql > self.limits.max_sql_filters_per_topic:
            raise AdminError(
                403,
                f"QuotaExceeded: a topic holds at most {self.limits.max_sql_filters_per_topic} SQL filters",
            )

    # ------------------------------------------------------------------ lists
    def _list(self, base: str, path: str, kind: str, parent: Any, query: dict[str, str]) -> Response:
        try:
            skip = int(query.get("$skip", "0"))
            top = int(query.get("$top", "100"))
        except ValueError:
            raise AdminError(400, "$skip and $top must be integers") from None
        if kind in ("queue", "topic"):
            items: list[Any] = sorted(
                (q for q in self.broker.queues.values() if q.kind == kind), key=lambda q: q.name.lower()
            )
            entries = [self._entity_entry(base, q) for q in items[skip : skip + top]]
        elif kind == "subscription":
            items = sorted(self._topic(parent).subscriptions.values(), key=lambda s: s.name.lower())
            entries = [self._subscription_entry(base, s) for s in items[skip : skip + top]]
        else:
            topic_name, sub_name = parent
            sub = self._topic(topic_name).subscriptions.get(sub_name.lower())
            if sub is None:
                raise AdminError(
                    404, f"Entity '{self.namespace}:Topic:{topic_name}|{sub_name}' was not found."
                )
            items = list(sub.rule_configs)
            entries = [self._rule_entry(base, sub, r) for r in items[skip : skip + top]]
        url = f"{base}/{path}?$skip={skip}&$top={top}&api-version={API_VERSION}"
        nxt = (
            f"{base}/{path}?$skip={skip + top}&$top={top}&api-version={API_VERSION}"
            if skip + top < len(items)
            else None
        )
        return _xml(200, atom.feed(url, kind.capitalize() + "s", entries, nxt))

    # ------------------------------------------------------------------ properties
    def _default_queue_props(self) -> QueueProperties:
        """The service's defaults for a new entity, within the profile (TTL capped like the official
        emulator's 1 hour when that profile is on)."""
        d = QueueProperties()
        return d.with_(default_ttl=min(d.default_ttl, self.limits.max_ttl_s or d.default_ttl))

    def _queue_props(
        self, f: dict[str, ET.Element], old: QueueProperties, where: str, subscription: bool = False
    ) -> QueueProperties:
        changes: dict[str, Any] = {}
        for xml_name, attr, read in (
            ("LockDuration", "lock_duration", atom.duration),
            ("MaxDeliveryCount", "max_delivery_count", atom.number),
            ("DefaultMessageTimeToLive", "default_ttl", atom.duration),
            ("DeadLetteringOnMessageExpiration", "dead_letter_on_expiration", atom.flag),
            ("RequiresSession", "requires_session", atom.flag),
            ("UserMetadata", "user_metadata", atom.text),
        ):
            value = read(f, xml_name)
            if value is not None:
                changes[attr] = value
        if not subscription:
            for xml_name, attr, read in (
                ("RequiresDuplicateDetection", "requires_duplicate_detection", atom.flag),
                ("DuplicateDetectionHistoryTimeWindow", "duplicate_window", atom.duration),
                ("MaxSizeInMegabytes", "max_size_mb", atom.number),
                ("MaxMessageSizeInKilobytes", "max_message_size_kib", atom.number),
            ):
                value = read(f, xml_name)
                if value is not None:
                    changes[attr] = value
        for xml_name, attr in (
            ("ForwardTo", "forward_to"),
            ("ForwardDeadLetteredMessagesTo", "forward_dead_lettered_to"),
        ):
            if xml_name in f:
                changes[attr] = entity_from_address(atom.text(f, xml_name)) or None
        props = old.with_(**changes)
        self.limits.check_properties(where, props)
        self.limits.check_duplicate_window(where, props.duplicate_window, props.requires_duplicate_detection)
        if not subscription:
            props = props.with_(
                max_size_mb=self.limits.check_entity_size_mb(props.max_size_mb),
                max_message_size_kib=self._premium_kib(props.max_message_size_kib),
            )
        return props

    def _topic_props(self, f: dict[str, ET.Element], old: TopicProperties, name: str) -> TopicProperties:
        changes: dict[str, Any] = {}
        for xml_name, attr, read in (
            ("DefaultMessageTimeToLive", "default_ttl", atom.duration),
            ("RequiresDuplicateDetection", "requires_duplicate_detection", atom.flag),
            ("DuplicateDetectionHistoryTimeWindow", "duplicate_window", atom.duration),
            ("MaxSizeInMegabytes", "max_size_mb", atom.number),
            ("MaxMessageSizeInKilobytes", "max_message_size_kib", atom.number),
            ("UserMetadata", "user_metadata", atom.text),
        ):
            value = read(f, xml_name)
            if value is not None:
                changes[attr] = value
        props = dataclasses.replace(old, **changes)
        where = f"topic {name!r}"
        self.limits.check_ttl(where, props.default_ttl)
        self.limits.check_duplicate_window(where, props.duplicate_window, props.requires_duplicate_detection)
        return dataclasses.replace(
            props,
            max_size_mb=self.limits.check_entity_size_mb(props.max_size_mb),
            max_message_size_kib=self._premium_kib(props.max_message_size_kib),
        )

    def _premium_kib(self, kib: int | None) -> int | None:
        """MaxMessageSizeInKilobytes: the SDK echoes the reported 256 on Standard; only Premium takes
        another value."""
        if kib is None or (
            self.limits.premium_message_kib is None and kib * KIB == self.limits.max_message_bytes
        ):
            return None
        return self.limits.check_message_kib(kib)

    def _size_mb(self, mb: int | None) -> int:
        """MaxSizeInMegabytes as reported: the entity's, else the tier's default."""
        return mb or self.limits.default_entity_size_mb

    def _message_kib(self, kib: int | None) -> int:
        return self.limits.message_bytes_for(kib) // KIB

    # ------------------------------------------------------------------ runtime numbers
    def counts(self, q: Queue) -> Counts:
        """MessageCountDetails and size: active includes locked and deferred messages (they stay in the
        entity), scheduled ones are counted apart, the dead-letter sub-queue apart."""
        if isinstance(q, Topic):
            total = Counts()
            scheduled: set[int] = set()
            for s in q.subscriptions.values():
                c = self.counts(s)
                total.active += c.active
                total.dead_letter += c.dead_letter
                scheduled |= {m.seq for m in s.messages.values() if m.state.name == "SCHEDULED"}
            total.scheduled = len(scheduled)  # one topic message, however many subscription copies
            total.size_in_bytes = q.stored_bytes()
            return total
        raw = q.counts()
        size = q.stored_bytes()
        return Counts(
            active=raw["active"] + raw["locked"] + raw["deferred"],
            dead_letter=raw["dead_lettered"],
            scheduled=raw["scheduled"],
            size_in_bytes=size,
        )

    # ------------------------------------------------------------------ metadata and persistence
    def _meta(self, path: str) -> Meta:
        return self.meta.setdefault(path.lower(), Meta(created=self.started, updated=self.started))

    def _touch(self, path: str, fields: dict[str, ET.Element], *, created: bool) -> None:
        now = datetime.now(UTC)
        meta = self.meta[path.lower()] = Meta(now, now) if created else self._meta(path)
        meta.updated = now
        for name in _ECHOED:
            if (v := atom.text(fields, name)) is not None:
                meta.echo[name] = v

    def _forget(self, path: str) -> None:
        key = path.lower()
        self.meta = {k: v for k, v in self.meta.items() if k != key and not k.startswith(key + "/")}
        if self.store is not None:
            self.store.delete_entity(path)

    def _save(self, q: Queue) -> None:
        if self.store is None:
            return
        meta = self._meta(q.name).to_json()
        if isinstance(q, Topic):
            self.store.save_entity(
                q.name,
                "topic",
                {"name": q.name, "properties": dataclasses.asdict(q.topic_props), "meta": meta},
            )
        elif isinstance(q, Subscription):
            self.store.save_entity(
                q.name,
                "subscription",
                {
                    "topic": q.topic.name,
                    "name": q.subscription_name,
                    "properties": dataclasses.asdict(q.props),
                    "rules": [dataclasses.asdict(r) for r in q.rule_configs],
                    "meta": meta,
                },
            )
        else:
            self.store.save_entity(
                q.name, "queue", {"name": q.name, "properties": dataclasses.asdict(q.props), "meta": meta}
            )

    def restore(self, configured: set[str]) -> int:
        """Re-create saved entities (queues, topics, then subscriptions) not named in Config.json."""
        if self.store is None:
            return 0
        order = {"queue": 0, "topic": 1, "subscription": 2}
        restored = 0
        for _, kind, d in sorted(self.store.load_entities(), key=lambda row: order.get(row[1], 3)):
            top = d["topic"] if kind == "subscription" else d["name"]
            if top.lower() in configured:
                continue
            if kind == "queue":
                q: Queue = self.broker.add_queue(d["name"], QueueProperties(**d["properties"]))
            elif kind == "topic":
                q = add_topic(self.broker, TopicConfig(d["name"], TopicProperties(**d["properties"]), ()))
            else:
                topic = self.broker.queues.get(d["topic"].lower())
                if not isinstance(topic, Topic):
                    continue
                rules = tuple(RuleConfig(**r) for r in d["rules"])
                q = topic.add_subscription(d["name"], QueueProperties(**d["properties"]), rules)
                if not d["rules"]:  # every rule was deleted: the subscription receives nothing
                    q.rules, q.rule_configs = [], ()
            self.meta[q.name.lower()] = Meta.from_json(d["meta"])
            restored += 1
        return restored
