"""function_app.py loaded by Azure's own Python worker library (azure-functions-runtime, what Azure runs on
Python 3.13), through the handlers Azure's proxy worker calls: WorkerInitRequest (indexing), then
FunctionsMetadataRequest and FunctionLoadRequest. Anything the worker would refuse fails here, in both
trigger modes, the way it fails in Azure: the whole app, not one function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

LOAD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from devstack.host.worker import LanguageWorker, WorkerInitError
    worker = LanguageWorker(Path(sys.argv[1]))
    try:
        worker.start()
    except WorkerInitError as exc:
        print(json.dumps({"error": str(exc)}))
    else:
        loaded = worker.functions.values()
        print(json.dumps({f.name: [json.loads(b) for b in f.raw_bindings] for f in loaded}))
    finally:
        worker.stop()
    """
)


def _load(app_dir: Path, **settings: str) -> dict:
    """Start a worker on app_dir in a fresh interpreter (a worker is a process of its own in Azure)."""
    env = {
        **os.environ,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "ServiceBusConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=x;"
        "UseDevelopmentEmulator=true",
        "ORDERS_QUEUE_NAME": "orders",
        "OrderStoreConnection": f"sqlite:///{app_dir / 'orders.db'}",
        "PYTHONPATH": str(REPO_ROOT),
        **settings,
    }
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, str(app_dir)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["one", "many"])
def test_the_worker_loads_every_function_of_the_app_in_both_modes(mode: str, tmp_path: Path) -> None:
    loaded = _load(
        REPO_ROOT, ORDERS_TRIGGER_CARDINALITY=mode, OrderStoreConnection=f"sqlite:///{tmp_path}/o.db"
    )
    assert "error" not in loaded, loaded
    assert set(loaded) == {"process_order_step", "purge_idempotency_records", "get_customer_orders"}
    [trigger] = [b for b in loaded["process_order_step"] if b["type"] == "serviceBusTrigger"]
    assert trigger["isSessionsEnabled"] is True and trigger["dataType"] == "BINARY"
    assert trigger.get("cardinality", "ONE").upper() == mode.upper()
    assert trigger["name"] == ("msgs" if mode == "many" else "msg")


SCRATCH_APP = """
import typing

import azure.functions as func

app = func.FunctionApp()


@app.function_name("batch")
@app.service_bus_queue_trigger(
    arg_name="msgs", queue_name="q", connection="ServiceBusConnection", cardinality=func.Cardinality.MANY
)
def batch(msgs: {annotation}) -> None:
    pass


@app.function_name("ping")
@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
"""


def _scratch_app(tmp_path: Path, annotation: str) -> Path:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(SCRATCH_APP.format(annotation=annotation))
    (app_dir / "host.json").write_text('{"version": "2.0"}')
    return app_dir


def test_an_annotation_the_worker_refuses_fails_the_whole_app(tmp_path: Path) -> None:
    """PEP 585 `list[...]` is refused by the worker's annotation check, and the load error fails its init:
    no function is served, not even the unrelated HTTP one (what Azure did to the batch mode)."""
    loaded = _load(_scratch_app(tmp_path, "list[func.ServiceBusMessage]"))
    assert "invalid non-type annotation" in loaded["error"] and "batch" in loaded["error"]


def test_the_typing_generic_the_worker_accepts_loads(tmp_path: Path) -> None:
    loaded = _load(_scratch_app(tmp_path, "typing.List[func.ServiceBusMessage]"))
    assert set(loaded) == {"batch", "ping"}


def test_orders_host_refuses_an_app_the_worker_refuses_in_one_line(tmp_path: Path) -> None:
    """The local host reports a failed WorkerInitResponse as Azure would leave the app: one line naming
    the cause, exit 2, no receiver opened."""
    app_dir = _scratch_app(tmp_path, "list[func.ServiceBusMessage]")
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        json.dumps(
            {
                "Values": {
                    "FUNCTIONS_WORKER_RUNTIME": "python",
                    "ServiceBusConnection": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;"
                    "SharedAccessKey=x;UseDevelopmentEmulator=true",
                    "OrderStoreConnection": f"sqlite:///{tmp_path / 'o.db'}",
                }
            }
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.host",
            "--app-dir",
            str(app_dir),
            "--settings",
            str(settings),
            "--port",
            "0",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("orders: error: "), proc.stderr
    assert "invalid non-type annotation" in errors[0]
    assert "Traceback" not in proc.stderr and "local host started" not in proc.stderr


def test_the_app_directory_comes_first_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another function_app.py earlier on sys.path (the repository's, here) must not be the one indexed:
    the worker puts the app's own directory first, as Azure's worker does."""
    from devstack.host.worker import LanguageWorker

    app_dir = _scratch_app(tmp_path, "typing.List[func.ServiceBusMessage]")
    monkeypatch.syspath_prepend(str(app_dir))
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # now ahead of the app's directory
    worker = LanguageWorker(app_dir)
    try:
        worker.start()
        assert set(worker.functions) == {"batch", "ping"}
    finally:
        worker.stop()
        sys.modules.pop("function_app", None)
