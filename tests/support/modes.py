"""Running the shipped function_app in either trigger mode (ORDERS_TRIGGER_CARDINALITY) inside one test
process: the setting is read when function_app is imported, so switching means re-importing it."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from shared.settings import CARDINALITY_SETTING

MODES = ("one", "many")


@contextmanager
def trigger_cardinality(mode: str) -> Iterator[dict[str, str]]:
    """Import function_app with ORDERS_TRIGGER_CARDINALITY=mode; yields the setting to pass to a host.
    Afterwards the environment and the imported module are as they were."""
    saved = os.environ.get(CARDINALITY_SETTING)
    os.environ[CARDINALITY_SETTING] = mode
    try:
        if "function_app" in sys.modules:
            importlib.reload(sys.modules["function_app"])
        yield {CARDINALITY_SETTING: mode}
    finally:
        if saved is None:
            os.environ.pop(CARDINALITY_SETTING, None)
        else:
            os.environ[CARDINALITY_SETTING] = saved
        if "function_app" in sys.modules:
            importlib.reload(sys.modules["function_app"])
