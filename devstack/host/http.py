"""HTTP triggers served as `func start` serves them: `http://127.0.0.1:7071/api/<route>`, route templates
with parameters and simple constraints, allowed methods, 404 / 405, a real `func.HttpRequest` in (built by
azure.functions' HttpRequestConverter) and the `func.HttpResponse` out (HttpResponseConverter).

Auth levels are not enforced, as Core Tools does not enforce them locally."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from devstack.host.bindings import Listener
from devstack.host.config import HostConfigError
from devstack.host.discovery import FunctionSpec
from devstack.host.payload import http_reply, http_request

log = logging.getLogger("devstack.host")


class Invoker(Protocol):
    """What the server uses of the host (runtime.LocalHost): a protocol, so this module does not import
    runtime.py, which starts the server."""

    http_route_prefix: str

    def invoke(
        self, spec: FunctionSpec, build: Callable[[], Any], fields: dict[str, Any]
    ) -> tuple[bool, Any]: ...


# ASP.NET Core route constraints the local host understands; any other constraint matches anything.
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
    "decimal": r"-?\d+(?:\.\d+)?",
}
_PARAM = re.compile(r"^\{(\*{0,2})([A-Za-z_][A-Za-z0-9_]*)((?::[^}?]+)*)(\?)?\}$")


class RouteError(HostConfigError):
    """A route template the local host cannot read."""


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> Route:
        """`customers/{customer_id}/orders`, `items/{id:int}`, `{name?}`, `files/{*path}`; literal segments
        match case-insensitively (ASP.NET Core routing)."""
        parts: list[str] = []
        params: list[str] = []
        for segment in [s for s in template.strip("/").split("/") if s]:
            m = _PARAM.match(segment)
            if not m:
                if "{" in segment or "}" in segment:
                    raise RouteError(f"route {template!r}: segment {segment!r} is not supported locally")
                parts.append("/" + re.escape(segment))
                continue
            catch_all, name, constraints, optional = m.groups()
            params.append(name)
            regex = "[^/]+"
            for constraint in (c for c in constraints.split(":") if c):
                regex = _CONSTRAINTS.get(constraint.split("(")[0].lower(), regex)
            if catch_all:
                parts.append(f"(?:/(?P<{name}>.*))?")
            elif optional:
                parts.append(f"(?:/(?P<{name}>{regex}))?")
            else:
                parts.append(f"/(?P<{name}>{regex})")
        return cls(template, re.compile("^" + "".join(parts) + "/?$", re.IGNORECASE), tuple(params))

    def match(self, path: str) -> dict[str, str] | None:
        m = self.pattern.match(path)
        if m is None:
            return None
        return {k: unquote(v) for k, v in m.groupdict().items() if v is not None}


class LocalHttpServer:
    """A ThreadingHTTPServer on host:port (port 0: any free port) dispatching to the HTTP functions."""

    def __init__(self, host: Invoker, listeners: list[Listener], address: str, port: int) -> None:
        self.host = host
        prefix = host.http_route_prefix
        self.prefix = f"/{prefix}" if prefix else ""
        self.routes = [(Route.parse(x.route), x) for x in listeners]
        handler = type("LocalFunctionsHandler", (_Handler,), {"server_app": self})
        try:
            self.httpd = ThreadingHTTPServer((address, port), handler)
        except OSError as exc:
            from devstack.cli_errors import cannot_listen

            raise HostConfigError(cannot_listen("orders host", address, port, exc)) from None
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        split = urlsplit(target)
        path = split.path
        if self.prefix:
            if not (path.lower() == self.prefix or path.lower().startswith(self.prefix + "/")):
                return _plain(404, "Not Found")
            path = path[len(self.prefix) :]
        allowed: list[str] = []
        for route, listener in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if listener.methods and method.upper() not in listener.methods:
                allowed.extend(listener.methods)
                continue
            return self._call(listener, method, split, headers, body, params)
        if allowed:
            status, hdrs, text = _plain(405, "Method Not Allowed")
            return status, [*hdrs, ("allow", ", ".join(sorted(set(allowed))))], text
        return _plain(404, "Not Found")

    def _call(
        self,
        listener: Listener,
        method: str,
        split: Any,
        headers: dict[str, str],
        body: bytes,
        params: dict[str, str],
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        query: dict[str, list[str]] = {}
        for key, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(key, []).append(value)
        host_header = headers.get("host") or f"127.0.0.1:{self.port}"
        url = f"http://{host_header}{split.path}" + (f"?{split.query}" if split.query else "")
        ok, result = self.host.invoke(
            listener.spec,
            lambda: http_request(
                method, url, headers, {k: ",".join(v) for k, v in query.items()}, params, body
            ),
            {"method": method.upper(), "route": listener.route},
        )
        if not ok:  # the host answers 500 for a failed invocation, whatever failed
            return _plain(500, "Internal Server Error")
        try:
            reply = http_reply(result)
        except Exception:
            log.warning("HTTP function returned a value the host cannot read as a response", exc_info=True)
            return _plain(500, "Internal Server Error")
        return reply.status, reply.headers, reply.body


def _plain(status: int, text: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "text/plain; charset=utf-8")], text.encode()


class _Handler(BaseHTTPRequestHandler):
    server_app: LocalHttpServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        status, reply_headers, payload = self.server_app.dispatch(self.command, self.path, headers, body)
        self.send_response(status)
        names = {k.lower() for k, _ in reply_headers}
        for name, value in reply_headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in names and payload:
            self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:  # the invocation line says it all
        return
