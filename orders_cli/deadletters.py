"""The dead-letter queue over azure-servicebus: shared/dlq.py's `DeadLetterQueue` and send function.

The use cases (shared/dlq.py) take any object with peek/receive/complete/abandon/send; this is the one
the `orders dlq` command and the e2e tests use against a real (or the embedded) broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.dlq import DEAD_LETTER_PROPERTIES, NO_REASON, DeadLetter, Resubmission


def _text(value: Any) -> Any:
    """The SDK hands AMQP strings in application properties back as bytes: text again when UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def from_sdk(message: Any) -> DeadLetter:
    """A DeadLetter from an azure.servicebus ServiceBusReceivedMessage (peeked or received)."""
    from azure.servicebus.amqp import AmqpMessageBodyType

    props = {str(_text(k)): _text(v) for k, v in (message.application_properties or {}).items()}
    reason = message.dead_letter_reason or props.get("DeadLetterReason") or NO_REASON
    description = message.dead_letter_error_description or props.get("DeadLetterErrorDescription")
    body = b"".join(message.body) if message.body_type == AmqpMessageBodyType.DATA else None
    return DeadLetter(
        sequence_number=int(message.sequence_number),
        message_id=message.message_id,
        session_id=message.session_id,
        reason=str(reason),
        description=None if description is None else str(description),
        enqueued_time=message.enqueued_time_utc,
        delivery_count=message.delivery_count,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject,
        application_properties={k: v for k, v in props.items() if k not in DEAD_LETTER_PROPERTIES},
        body=body,
        handle=message,
    )


class ServiceBusDeadLetters:
    """`DeadLetterQueue` + send over azure-servicebus: the queue's DLQ is read with a plain (not session)
    receiver, because the dead-letter sub-queue of a session queue is not session-enabled; resubmissions go
    to the queue itself through one sender. Use as a context manager."""

    def __init__(self, client: Any, queue: str, *, receive_wait_s: float = 5.0) -> None:
        from azure.servicebus import ServiceBusSubQueue

        self._client = client
        self.queue = queue
        self._receive_wait_s = receive_wait_s
        self._receiver = client.get_queue_receiver(
            queue_name=queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, prefetch_count=0
        )
        self._sender: Any = None

    def __enter__(self) -> ServiceBusDeadLetters:
        self._client.__enter__()
        self._receiver.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._sender is not None:
                self._sender.__exit__(*exc)
            self._receiver.__exit__(*exc)
        finally:
            self._client.__exit__(*exc)

    def peek(self, from_sequence: int, max_count: int) -> list[DeadLetter]:
        found = self._receiver.peek_messages(max_message_count=max_count, sequence_number=from_sequence)
        return [from_sdk(m) for m in found]

    def receive(self, max_count: int) -> list[DeadLetter]:
        found = self._receiver.receive_messages(
            max_message_count=max_count, max_wait_time=self._receive_wait_s
        )
        return [from_sdk(m) for m in found]

    def complete(self, letter: DeadLetter) -> None:
        self._receiver.complete_message(letter.handle)

    def abandon(self, letter: DeadLetter) -> None:
        self._receiver.abandon_message(letter.handle)

    def send(self, messages: Sequence[Resubmission]) -> None:
        """Send in order, as few batches as the size limit allows."""
        from azure.servicebus import ServiceBusMessage
        from azure.servicebus.exceptions import MessageSizeExceededError

        if self._sender is None:
            self._sender = self._client.get_queue_sender(queue_name=self.queue)
            self._sender.__enter__()
        batch = self._sender.create_message_batch()
        for m in messages:
            out = ServiceBusMessage(
                m.body,
                session_id=m.session_id,
                message_id=m.message_id,
                content_type=m.content_type,
                correlation_id=m.correlation_id,
                subject=m.subject,
                application_properties=dict(m.application_properties),  # type: ignore[arg-type]
            )
            try:
                batch.add_message(out)
            except MessageSizeExceededError:
                if len(batch) == 0:
                    raise
                self._sender.send_messages(batch)
                batch = self._sender.create_message_batch()
                batch.add_message(out)
        if len(batch):
            self._sender.send_messages(batch)
