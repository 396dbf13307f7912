"""The FunctionRpc messages (function_rpc.proto beside this file), as the `protos` namespace Azure's proxy
worker hands its worker library (`WorkerRequest.properties["protos"]`).

The Python classes are generated from the .proto with grpcio-tools' protoc into `_generated/` (git-ignored):
by `make install` (`python -m devstack.host.rpc`), or on first import when missing or older than the
.proto (a fresh clone installed some other way). Generation holds a file lock, so parallel test workers
generate once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
PROTO = HERE / "function_rpc.proto"
OUT = HERE / "_generated"
MODULE = "function_rpc_pb2"


class RpcSchemaError(RuntimeError):
    """The FunctionRpc classes could not be generated (grpcio-tools missing or protoc failed)."""


def _proto_digest() -> str:
    return hashlib.sha256(PROTO.read_bytes()).hexdigest()


def _stamp() -> Path:
    return OUT / "PROTO_SHA256"


def is_current() -> bool:
    stamp = _stamp()
    return (
        (OUT / f"{MODULE}.py").is_file() and stamp.is_file() and stamp.read_text().strip() == _proto_digest()
    )


def generate() -> Path:
    """Run protoc (grpcio-tools) on function_rpc.proto unless `_generated/` already matches it."""
    OUT.mkdir(exist_ok=True)
    with open(OUT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_current():
            return OUT / f"{MODULE}.py"
        try:
            from grpc_tools import protoc
        except ImportError:
            raise RpcSchemaError(
                "grpcio-tools is not installed: run `make install` (it generates the FunctionRpc classes)"
            ) from None
        include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
        code = protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={OUT}", str(PROTO)])
        if code != 0:
            raise RpcSchemaError(f"protoc failed on {PROTO.name} (exit {code})")
        (OUT / "__init__.py").write_text("")
        _stamp().write_text(_proto_digest() + "\n")
    return OUT / f"{MODULE}.py"


def _load() -> ModuleType:
    if not is_current():
        generate()
        sys.modules.pop(f"{__name__}._generated.{MODULE}", None)
    return importlib.import_module(f"{__name__}._generated.{MODULE}")


class _Protos:
    """Every message and enum of the schema as an attribute (`protos.InvocationRequest`, ...), which is
    how the worker library reads them."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


protos: Any = _Protos(_load())
