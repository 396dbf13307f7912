"""Service Bus quotas the emulator enforces, as named profiles (Standard, Premium, the official emulator).

Sources (cited in docs/emulator.md, "Limits"):

* Service Bus quotas, learn.microsoft.com/azure/service-bus-messaging/service-bus-quotas: message size
  256 KB (Standard) / up to 100 MB per entity (Premium, `MaxMessageSizeInKilobytes`, 1 MB by default),
  5,000 AMQP connections per namespace, 10,000 queues + topics per namespace, 2,000 subscriptions per
  topic, 2,000 SQL filters and 100,000 correlation filters per topic, 1,024 characters per filter or action,
  32 expressions per action, queue/topic size 1-5 GB (1 GB by default; 80 GB on Premium).
* The AMQP guide (service-bus-amqp-protocol-guide): max frame size 262,144 bytes for Standard, 1,048,576
  for Premium.
* The official emulator's "Usage quotas" table (overview-emulator) and its Config schema
  (Azure/azure-service-bus-emulator-installer, ServiceBus-Emulator/Schema/Config-schema.json): 50 queues +
  topics, 50 subscriptions per topic, 1,000 correlation and 20 SQL filters, 10 connections, 256 KB messages,
  100 MB per queue or topic, message TTL at most 1 hour, lock duration 5 s - 5 min, MaxDeliveryCount 1-10,
  duplicate detection window 5 s - 5 min.
* Batches: Service Bus rejects a batch over 1 MB on Premium whatever the entity's message size
  (Azure/azure-service-bus#708); on Standard the 256 KB applies to the whole transfer.

The official emulator has no setting for any of these in Config.json (message size is "not configurable"
there); the profile is chosen with `--limits` / `EmulatorServer(limits=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .config import EmulatorConfig

KIB = 1024
MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded"
RESOURCE_LIMIT_EXCEEDED = "amqp:resource-limit-exceeded"


class LimitError(ValueError):
    """A value outside the profile's bounds (a config error, or an HTTP 400 from the admin API)."""


@dataclass(frozen=True)
class Limits:
    """One quota profile. `None` means the service documents no bound the emulator needs to apply."""

    name: str = "standard"
    sku: str = "Standard"
    max_message_bytes: int = 256 * KIB
    premium_message_kib: tuple[int, int] | None = None  # (default, max) MaxMessageSizeInKilobytes
    max_batch_bytes: int = 256 * KIB
    max_frame_bytes: int = 262_144
    max_connections: int = 5_000
    max_entities: int = 10_000
    max_subscriptions_per_topic: int = 2_000
    max_sql_filters_per_topic: int = 2_000
    max_correlation_filters_per_topic: int = 100_000
    max_filter_chars: int = 1_024
    max_entity_size_mb: tuple[int, ...] = (1024, 2048, 3072, 4096, 5120)
    default_entity_size_mb: int = 1024
    max_ttl_s: float | None = None
    lock_duration_s: tuple[float, float] = (0.0, 300.0)
    max_delivery_count: tuple[int, int | None] = (1, None)
    duplicate_window_s: tuple[float, float] = (20.0, 7 * 86400.0)

    @staticmethod
    def standard() -> Limits:
        """Service Bus Standard (the app's deployment tier, infra/ `serviceBusSku` default)."""
        return Limits()

    @staticmethod
    def premium() -> Limits:
        """Service Bus Premium: 1 MiB frames and batches, per-entity message size 1 MiB (up to 100 MiB)."""
        return replace(
            Limits(),
            name="premium",
            sku="Premium",
            max_message_bytes=1024 * KIB,
            premium_message_kib=(1024, 102_400),
            max_batch_bytes=1024 * KIB,
            max_frame_bytes=1_048_576,
            max_entities=1_000,
            max_entity_size_mb=(1024, 2048, 3072, 4096, 5120, 10240, 20480, 40960, 81920),
        )

    @staticmethod
    def official_emulator() -> Limits:
        """The official emulator's usage quotas and Config schema bounds (Standard wire sizes)."""
        return replace(
            Limits(),
            name="official-emulator",
            max_connections=10,
            max_entities=50,
            max_subscriptions_per_topic=50,
            max_sql_filters_per_topic=20,
            max_correlation_filters_per_topic=1_000,
            max_entity_size_mb=(100,),
            default_entity_size_mb=100,
            max_ttl_s=3600.0,
            lock_duration_s=(5.0, 300.0),
            max_delivery_count=(1, 10),
            duplicate_window_s=(5.0, 300.0),
        )

    @staticmethod
    def named(name: str) -> Limits:
        """Profile by its CLI name."""
        profiles = {
            "standard": Limits.standard,
            "premium": Limits.premium,
            "official-emulator": Limits.official_emulator,
        }
        try:
            return profiles[name.lower()]()
        except KeyError:
            raise LimitError(f"unknown limits profile {name!r} (use one of: {', '.join(profiles)})") from None

    # ------------------------------------------------------------------ checks
    def message_bytes_for(self, max_message_kib: int | None) -> int:
        """An entity's message size: Premium honours MaxMessageSizeInKilobytes, Standard is fixed."""
        if self.premium_message_kib is None or max_message_kib is None:
            return self.max_message_bytes
        return max_message_kib * KIB

    def check_message_kib(self, kib: int | None) -> int | None:
        """Validate MaxMessageSizeInKilobytes (Premium only, 1,024 - 102,400)."""
        if kib is None:
            return None
        if self.premium_message_kib is None:
            raise LimitError("MaxMessageSizeInKilobytes can only be set on a Premium namespace")
        low, high = self.premium_message_kib
        if not low <= kib <= high:
            raise LimitError(f"MaxMessageSizeInKilobytes must be between {low} and {high}, got {kib}")
        return kib

    def check_entity_size_mb(self, mb: int | None) -> int:
        """Validate MaxSizeInMegabytes against the tier's allowed values."""
        if mb is None:
            return self.default_entity_size_mb
        if mb not in self.max_entity_size_mb:
            allowed = ", ".join(str(v) for v in self.max_entity_size_mb)
            raise LimitError(f"MaxSizeInMegabytes must be one of {allowed}, got {mb}")
        return mb

    def check_properties(self, where: str, props: Any) -> None:
        """Bounds of a queue's or subscription's properties (config.QueueProperties)."""
        low, high = self.lock_duration_s
        if not low <= props.lock_duration <= high:
            raise LimitError(f"{where}: LockDuration must be between {low:g} s and {high:g} s")
        dlow, dhigh = self.max_delivery_count
        if props.max_delivery_count < dlow or (dhigh is not None and props.max_delivery_count > dhigh):
            raise LimitError(f"{where}: MaxDeliveryCount must be between {dlow} and {dhigh or 'unbounded'}")
        self.check_ttl(where, props.default_ttl)

    def check_ttl(self, where: str, ttl_s: float) -> None:
        """DefaultMessageTimeToLive within the profile's maximum (the official emulator's 1 hour)."""
        if self.max_ttl_s is not None and ttl_s > self.max_ttl_s:
            raise LimitError(f"{where}: DefaultMessageTimeToLive must be at most {self.max_ttl_s:g} s")

    def check_duplicate_window(self, where: str, window_s: float, enabled: bool) -> None:
        """DuplicateDetectionHistoryTimeWindow bounds (only when duplicate detection is on)."""
        low, high = self.duplicate_window_s
        if enabled and not low <= window_s <= high:
            raise LimitError(
                f"{where}: DuplicateDetectionHistoryTimeWindow must be between {low:g} s and {high:g} s"
            )

    def check_counts(self, entities: int, subscriptions: dict[str, int], filters: dict[str, int]) -> None:
        """Entity counts: queues + topics, subscriptions per topic, filters per topic."""
        if entities > self.max_entities:
            raise LimitError(f"{entities} queues and topics exceed the namespace's {self.max_entities}")
        for topic, n in subscriptions.items():
            if n > self.max_subscriptions_per_topic:
                raise LimitError(
                    f"topic {topic!r}: {n} subscriptions exceed {self.max_subscriptions_per_topic}"
                )
        for topic, n in filters.items():
            if n > self.max_sql_filters_per_topic:
                raise LimitError(f"topic {topic!r}: {n} SQL filters exceed {self.max_sql_filters_per_topic}")

    def check_filter_text(self, where: str, text: str | None) -> None:
        """Length of a SQL filter or action."""
        if text is not None and len(text) > self.max_filter_chars:
            raise LimitError(f"{where}: a filter or action is limited to {self.max_filter_chars} characters")


def check_config(cfg: EmulatorConfig, limits: Limits) -> None:
    """Every quota a Config.json can break: entity counts, property bounds, filter lengths and counts.

    Programmatic helpers (EmulatorServer.create_queue, used by tests for sub-second timers) bypass this.
    """
    for q in cfg.queues:
        limits.check_properties(f"queue {q.name!r}", q.properties)
        limits.check_duplicate_window(
            f"queue {q.name!r}", q.properties.duplicate_window, q.properties.requires_duplicate_detection
        )
    subscriptions: dict[str, int] = {}
    sql_filters: dict[str, int] = {}
    for t in cfg.topics:
        limits.check_ttl(f"topic {t.name!r}", t.properties.default_ttl)
        limits.check_duplicate_window(
            f"topic {t.name!r}", t.properties.duplicate_window, t.properties.requires_duplicate_detection
        )
        subscriptions[t.name] = len(t.subscriptions)
        sql_filters[t.name] = 0
        for s in t.subscriptions:
            where = f"topic {t.name!r} subscription {s.name!r}"
            limits.check_properties(where, s.properties)
            for r in s.rules:
                if r.filter_type == "Sql":
                    sql_filters[t.name] += 1
                    limits.check_filter_text(f"{where} rule {r.name!r}", r.filter)
                limits.check_filter_text(f"{where} rule {r.name!r}", r.action)
    limits.check_counts(len(cfg.queues) + len(cfg.topics), subscriptions, sql_filters)
