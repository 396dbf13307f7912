"""host.json checked against what the app relies on, at start, like the app settings (issue 19, point 4).

function_app.py calls `validate_host_json` at import with the host.json deployed next to it (the app
directory), so in Azure a value that would break the guarantee fails the worker's function indexing and
no listener starts: nothing is consumed (docs/operations.md "Bad configuration"). The local host calls it
too, with its overrides applied (devstack/host/runtime.py prepare). One line, naming the value.

Names and defaults are those of the Functions host 4.x and the Service Bus extension 5.x (the bundle
[4.0.0, 5.0.0) in host.json): keys are matched case-insensitively, as the host's configuration binder
does; an absent functionTimeout is the Consumption plan's default, 5 minutes (the shortest default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.settings import STORE_RETRY_SETTING, AppSettings, SettingsError
from shared.store.retry import ATTEMPT_WORST_CASE_S, HOLD_MARGIN_S
from shared.timespan import TimeSpanError, parse_timespan

# The extensions.serviceBus keys validate_host_json reads (lower case; functionTimeout is top level).
GUARDED_HOST_JSON_KEYS = frozenset({"autocompletemessages", "maxautolockrenewalduration"})

HOST_JSON = "host.json"
DEFAULT_FUNCTION_TIMEOUT_S = 300.0  # Consumption; Premium/Dedicated default to 30 min
DEFAULT_LOCK_RENEWAL_S = 300.0  # Service Bus extension 5.x maxAutoLockRenewalDuration


class HostJsonError(SettingsError):
    """A host.json value the app cannot run with; the message names it."""


def load_host_json(app_dir: str | Path) -> dict[str, Any]:
    """The app directory's host.json, {} when there is none; HostJsonError when it is not a JSON object."""
    path = Path(app_dir) / HOST_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HostJsonError(f"{HOST_JSON}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HostJsonError(f"{HOST_JSON}: must be a JSON object")
    return data


def _get(section: Mapping[str, Any], key: str) -> Any:
    lowered = key.lower()
    for name, value in section.items():
        if str(name).lower() == lowered:
            return value
    return None


def _section(host: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node: Any = host
    for key in path:
        node = _get(node, key) if isinstance(node, Mapping) else None
        if node is None:
            return {}
    if not isinstance(node, Mapping):
        raise HostJsonError(f"{HOST_JSON}: {'.'.join(path)} must be an object")
    return node


def _seconds(value: Any, label: str) -> float:
    try:
        seconds = parse_timespan(value)
    except TimeSpanError as exc:
        raise HostJsonError(f"{HOST_JSON}: {label}: {exc}") from None
    if seconds < 0:
        raise HostJsonError(f"{HOST_JSON}: {label} must not be negative, not {value!r}")
    return seconds


def function_timeout(host: Mapping[str, Any]) -> float | None:
    """functionTimeout in seconds; None when unlimited ("-1", Premium/Dedicated only)."""
    raw = _get(host, "functionTimeout")
    if raw is None:
        return DEFAULT_FUNCTION_TIMEOUT_S
    if str(raw).strip() == "-1":
        return None
    return _seconds(raw, "functionTimeout")


def validate_host_json(host: Mapping[str, Any], settings: AppSettings) -> None:
    """HostJsonError (one line) for a value that would break the guarantee:

    * extensions.serviceBus.autoCompleteMessages false: the app settles a message by returning (complete)
      or raising (abandon); with it off nothing completes them, every lock expires and every message is
      redelivered until it is dead-lettered, applied or not;
    * functionTimeout shorter than ORDERS_STORE_RETRY_SECONDS plus one store attempt's worst case: the
      host would kill the invocation (and restart the worker) while it is still retrying a store outage;
    * extensions.serviceBus.maxAutoLockRenewalDuration shorter than that (0 disables renewal): the session
      lock would expire while the invocation retries, and completing the message would fail.
    """
    sb = _section(host, "extensions", "serviceBus")
    auto_complete = _get(sb, "autoCompleteMessages")
    if auto_complete is not None and str(auto_complete).strip().lower() != "true":
        raise HostJsonError(
            f"{HOST_JSON}: extensions.serviceBus.autoCompleteMessages is {json.dumps(auto_complete)}; it "
            "must be true: the app settles each message by returning (complete) or raising (abandon)"
        )
    needed = settings.store_retry_seconds + ATTEMPT_WORST_CASE_S + HOLD_MARGIN_S
    why = (
        f"{STORE_RETRY_SETTING}={settings.store_retry_seconds:g} s plus one store attempt's worst case "
        f"({ATTEMPT_WORST_CASE_S:g} s) and the step itself ({HOLD_MARGIN_S:g} s)"
    )
    timeout = function_timeout(host)
    if timeout is not None and timeout <= needed:
        raise HostJsonError(
            f"{HOST_JSON}: functionTimeout {_get(host, 'functionTimeout')!s} ({timeout:g} s) must be longer "
            f"than {needed:g} s, the {why}"
        )
    renewal_raw = _get(sb, "maxAutoLockRenewalDuration")
    renewal = (
        DEFAULT_LOCK_RENEWAL_S
        if renewal_raw is None
        else _seconds(renewal_raw, "extensions.serviceBus.maxAutoLockRenewalDuration")
    )
    if renewal <= needed:
        raise HostJsonError(
            f"{HOST_JSON}: extensions.serviceBus.maxAutoLockRenewalDuration {renewal_raw!s} ({renewal:g} s) "
            f"must be longer than {needed:g} s, the {why}"
        )
