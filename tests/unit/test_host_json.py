"""host.json is checked at start like the app settings (issue 19, point 4): a value that would break the
guarantee is one line naming it; the repo's host.json passes with every retry budget the settings allow."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.host.config import HostConfigError
from devstack.host.runtime import LocalHost
from shared.host_json import HostJsonError, load_host_json, validate_host_json
from shared.settings import MAX_STORE_RETRY_SECONDS, AppSettings
from shared.store.retry import ATTEMPT_WORST_CASE_S, HOLD_MARGIN_S

REPO = Path(__file__).resolve().parents[2]
HOST = load_host_json(REPO)
DEFAULTS = AppSettings()
# what functionTimeout and lock renewal must exceed with the default hold budget
NEEDED = f"{DEFAULTS.store_retry_seconds + ATTEMPT_WORST_CASE_S + HOLD_MARGIN_S:g} s"


def with_sb(**changes: Any) -> dict[str, Any]:
    host = copy.deepcopy(HOST)
    host["extensions"]["serviceBus"].update(changes)
    return host


def test_the_repo_host_json_passes_with_every_allowed_retry_budget() -> None:
    for budget in (0.0, DEFAULTS.store_retry_seconds, MAX_STORE_RETRY_SECONDS):
        validate_host_json(HOST, AppSettings(store_retry_seconds=budget))
    # no host.json: the host's defaults (5 min each) hold a short budget, not the default one
    validate_host_json({}, AppSettings(store_retry_seconds=20))
    with pytest.raises(HostJsonError, match=f"functionTimeout None .* must be longer than {NEEDED}"):
        validate_host_json({}, DEFAULTS)


@pytest.mark.parametrize("value", [False, "false", "False", 0])
def test_auto_complete_off_fails_start(value: Any) -> None:
    with pytest.raises(HostJsonError) as caught:
        validate_host_json(with_sb(autoCompleteMessages=value), DEFAULTS)
    assert str(caught.value).startswith(
        f"host.json: extensions.serviceBus.autoCompleteMessages is {json.dumps(value)}; it must be true"
    )


def test_keys_are_matched_case_insensitively_as_the_host_does() -> None:
    host = copy.deepcopy(HOST)
    host["Extensions"] = host.pop("extensions")
    host["Extensions"]["ServiceBus"] = host["Extensions"].pop("serviceBus")
    del host["Extensions"]["ServiceBus"]["autoCompleteMessages"]
    host["Extensions"]["ServiceBus"]["AutoCompleteMessages"] = "true"
    validate_host_json(host, DEFAULTS)
    host["Extensions"]["ServiceBus"]["AutoCompleteMessages"] = False
    with pytest.raises(HostJsonError, match="autoCompleteMessages"):
        validate_host_json(host, DEFAULTS)


@pytest.mark.parametrize("timeout", ["00:00:00.001", "00:00:50", "00:00:10"])
def test_a_function_timeout_shorter_than_the_retry_budget_needs_fails_start(timeout: str) -> None:
    with pytest.raises(HostJsonError) as caught:
        validate_host_json({**HOST, "functionTimeout": timeout}, DEFAULTS)
    assert str(caught.value).startswith(f"host.json: functionTimeout {timeout} (")
    budget = f"ORDERS_STORE_RETRY_SECONDS={DEFAULTS.store_retry_seconds:g} s plus one store attempt"
    assert f"must be longer than {NEEDED}, the {budget}" in str(caught.value)


def test_a_function_timeout_long_enough_for_a_smaller_budget_passes() -> None:
    host = {**HOST, "functionTimeout": "00:03:00"}  # > 5 s budget + one attempt + the step
    validate_host_json(host, AppSettings(store_retry_seconds=5))
    validate_host_json({**HOST, "functionTimeout": "-1"}, DEFAULTS)  # unlimited (Premium/Dedicated)


@pytest.mark.parametrize("renewal", ["00:00:00", "00:00:30"])
def test_a_lock_renewal_shorter_than_the_retry_budget_needs_fails_start(renewal: str) -> None:
    with pytest.raises(
        HostJsonError, match=f"maxAutoLockRenewalDuration {renewal} .* must be longer than {NEEDED}"
    ):
        validate_host_json(with_sb(maxAutoLockRenewalDuration=renewal), DEFAULTS)


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"functionTimeout": "5 minutes"}, "host.json: functionTimeout: '5 minutes' is not a TimeSpan"),
        ({"functionTimeout": "-00:05:00"}, "host.json: functionTimeout must not be negative"),
        ({"extensions": {"serviceBus": []}}, "host.json: extensions.serviceBus must be an object"),
    ],
)
def test_a_malformed_value_is_one_line(host: dict[str, Any], message: str) -> None:
    with pytest.raises(HostJsonError, match=message):
        validate_host_json(host, DEFAULTS)


def test_a_host_json_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{ nope")
    with pytest.raises(HostJsonError, match=r"host\.json: not valid JSON"):
        load_host_json(tmp_path)
    assert load_host_json(tmp_path / "missing") == {}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERS_", "OrderStore", "ServiceBus"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def test_function_app_refuses_to_load_next_to_a_bad_host_json(tmp_path: Path) -> None:
    """What the worker does at indexing: import function_app from the app directory, whose host.json is
    the deployed one. It must fail (no listener starts, nothing is consumed); next to a good one it loads."""
    shutil.copy(REPO / "function_app.py", tmp_path / "function_app.py")
    (tmp_path / "host.json").write_text(json.dumps(with_sb(autoCompleteMessages=False)))
    cmd = [sys.executable, "-c", "import function_app"]
    bad = subprocess.run(cmd, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "HostJsonError: host.json: extensions.serviceBus.autoCompleteMessages is false" in bad.stderr
    (tmp_path / "host.json").write_text(json.dumps(HOST))
    good = subprocess.run(cmd, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr[-2000:]


def test_the_local_host_checks_the_host_json_in_effect_with_its_overrides(tmp_path: Path) -> None:
    """devstack's host applies the app's check to host.json with its overrides, before importing the app."""
    host = LocalHost(
        REPO, settings_path=tmp_path / "none.json", host_json_overrides={"autoCompleteMessages": False}
    )
    with pytest.raises(HostConfigError, match="autoCompleteMessages is false"):
        host.prepare()
    short = LocalHost(
        REPO,
        settings_path=tmp_path / "none.json",
        settings_overrides={"ORDERS_STORE_RETRY_SECONDS": "60"},
        host_json_overrides={"maxAutoLockRenewalDuration": "00:01:00"},
    )
    needed = 60 + ATTEMPT_WORST_CASE_S + HOLD_MARGIN_S
    with pytest.raises(
        HostConfigError, match=rf"maxAutoLockRenewalDuration 00:01:00 .* longer than {needed:g} s"
    ):
        short.prepare()
