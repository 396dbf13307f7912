"""Azure Functions entrypoints (Python v2 model). Thin adapters: parse, call the service, report.

One message's path (ORDERS_TRIGGER_CARDINALITY=one, the default): process_order_step
-> envelope_from_message -> OrderService.handle -> StreamProcessor.process (engine + the order workflow)
-> store.commit (one transaction).
A batch's path (=many): process_order_steps -> OrderService.handle_batch -> engine.batch.process_batch
-> store.commit_batch (one transaction for the batch; see shared/engine/batch.py).
"""

from __future__ import annotations

import json
import logging
import typing
from pathlib import Path

import azure.functions as func
from azure_functions_logging import JsonFormatter, logging_context, setup_logging

from shared.functions_adapter import envelope_from_message, envelopes_from_messages
from shared.host_json import load_host_json, validate_host_json
from shared.service import get_service
from shared.settings import (
    QUEUE_NAME_SETTING,
    SERVICE_BUS_CONNECTION,
    merged_environment,
    trigger_cardinality,
    validate_app_settings,
)

setup_logging(functions_formatter=JsonFormatter(), format="json")

# Fail fast: a malformed setting (e.g. OrderStoreConnection=bogus://x), one the store cannot honour (e.g.
# ORDERS_PARK_LIMIT above what one Table transaction holds) or a host.json value that would break the
# guarantee (autoCompleteMessages false, a functionTimeout or lock renewal shorter than the store retry
# budget needs) raises SettingsError here, at import. In Azure that fails the worker's function indexing, so
# the host starts no listener and no message is consumed (docs/operations.md "Bad configuration"), instead
# of every message failing until it is dead-lettered. Whether the store answers is not checked here: that
# is transient. host.json is deployed next to this file (the app directory).
SETTINGS = validate_app_settings(merged_environment())
validate_host_json(load_host_json(Path(__file__).resolve().parent), SETTINGS)
# The workflow ORDERS_WORKFLOW selects (shared/workflows.py): its names make the HTTP route below. The
# workflow object itself (pydantic, the domain) loads with the service, on the first message.
BINDING = SETTINGS.binding()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

# Daily at 02:30 UTC: purge idempotency records older than IDEMPOTENCY_RETENTION_DAYS.
PURGE_SCHEDULE = "0 30 2 * * *"


# ORDERS_TRIGGER_CARDINALITY, read once when the worker indexes this module (a deployment-time choice:
# changing it restarts the app). A bad value raises SettingsError here: indexing fails, nothing listens.
TRIGGER_CARDINALITY = trigger_cardinality(merged_environment())

if TRIGGER_CARDINALITY == "many":

    @app.function_name("process_order_step")
    @app.service_bus_queue_trigger(
        arg_name="msgs",
        queue_name=f"%{QUEUE_NAME_SETTING}%",
        connection=SERVICE_BUS_CONNECTION,
        is_sessions_enabled=True,
        cardinality=func.Cardinality.MANY,
        # Binary: the bodies reach the function as bytes and the host copies nothing from them into the
        # trigger metadata. With a string binding, a JSON body's top-level properties override the broker's
        # metadata ("SessionId", "MessageId", "DeliveryCount", ...): see docs/local-host.md.
        data_type=func.DataType.BINARY,
    )
    def process_order_steps(
        msgs: typing.List[func.ServiceBusMessage],  # noqa: UP006
        context: func.Context,
    ) -> None:
        """A batch of ONE session's messages, in order (host.json maxMessageBatchSize at most), committed
        in one store transaction; all completed on return, all abandoned when this raises (transient)."""
        with logging_context(context):
            get_service().handle_batch(envelopes_from_messages(msgs))

else:

    @app.function_name("process_order_step")
    @app.service_bus_queue_trigger(
        arg_name="msg",
        queue_name=f"%{QUEUE_NAME_SETTING}%",
        connection=SERVICE_BUS_CONNECTION,
        is_sessions_enabled=True,
        # Binary: the body reaches the function as bytes and the host copies nothing from it into the
        # trigger metadata. With a string binding, a JSON body's top-level properties override the broker's
        # metadata ("SessionId", "MessageId", "DeliveryCount", ...): see docs/local-host.md.
        data_type=func.DataType.BINARY,
    )
    def process_order_step(msg: func.ServiceBusMessage, context: func.Context) -> None:
        """Completes on return (autoCompleteMessages); raises only on transient store failures
        -> redelivery."""
        with logging_context(context):
            get_service().handle(envelope_from_message(msg))


@app.function_name("purge_idempotency_records")
@app.timer_trigger(arg_name="timer", schedule=PURGE_SCHEDULE, run_on_startup=False, use_monitor=True)
def purge_idempotency_records(timer: func.TimerRequest, context: func.Context) -> None:
    with logging_context(context):
        get_service().purge_idempotency_records()


# `customers/{customer_id}/orders` for the order workflow: one session's streams through the read model.
@app.function_name(BINDING.http_function_name)
@app.route(route=BINDING.http_route, methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_session_streams(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    import re

    from shared.contract import ID_PATTERN
    from shared.views import stream_view

    b = BINDING
    session_id = req.route_params.get(b.session_field, "")
    with logging_context(context):
        if not re.fullmatch(ID_PATTERN, session_id):
            return _json({"error": f"{b.session_field} must match {ID_PATTERN}"}, 400)
        ledgers = get_service().store.list_ledgers(session_id)
        logging.getLogger("orders.http").info(
            f"{b.session_label} {b.stream_plural} read",
            extra={b.session_field: session_id, b.stream_plural: len(ledgers)},
        )
        return _json(
            {b.session_field: session_id, b.stream_plural: [stream_view(b, x) for x in ledgers]}, 200
        )


def _json(body: object, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")
