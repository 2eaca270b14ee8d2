"""OpenTelemetry in over gRPC: the OTLP collector services on a second port (4317 by default).

Python's auto-instrumentation (``opentelemetry-instrument``) and several SDKs export OTLP/gRPC
by default. ``OtlpGrpcServer`` serves the collector's ``Export`` method of every signal of
OTLP/HTTP (traces and logs, ``otlp.SIGNALS``) with its rules: the same credentials (from the
call's metadata), the same size cap (``--max-body-bytes``, after decompression), the same load
shedding, and the items and refusals counted in the same ``OtlpReceiver``, so ``/status`` and
``/metrics`` show both transports together. Refusals carry the gRPC status codes the OTLP
specification names; rejected items come back as ``partial_success``.

The server is grpcio's asyncio one (``grpc.aio``) on an event loop in a thread of its own, with
the Export handlers run in a thread pool as before: idle, its threads block until a call comes.
grpcio's threaded server polls its completion queue every 200 ms to check for signals (a period
compiled into grpcio), five wake-ups a second that cost an idle monitor more than its sampler.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any, NoReturn

import grpc
from flask import Flask

from live_monitor.core.monitor import LiveExecutionMonitor
from live_monitor.store import StoreUnavailable
from live_monitor.web.access import Access
from live_monitor.web.errors import ApiError
from live_monitor.web.otlp import (
    GRPC_CODES,
    SIGNALS,
    OtlpReceiver,
    Signal,
    SpanBatch,
    decode,
    export_response,
    note_refusal,
)

__all__ = ["OtlpGrpcServer", "port_taken"]

log = logging.getLogger("live_execution_monitor")

STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class OtlpGrpcServer:
    """The gRPC server of one app: binds ``host:port`` (port 0 = off), serves ``SIGNALS``.

    ``shared`` binds with SO_REUSEPORT, so that the ``--workers`` processes all serve one port;
    otherwise the port is this process's alone, and a port already taken (a local collector,
    another monitor) leaves the server off with one warning rather than stopping the monitor.
    """

    def __init__(self, app: Flask, host: str, port: int, *, shared: bool = False) -> None:
        self.app = app
        self.host, self.port, self.shared = host, port, shared
        self.listening = False
        self._server: Any = None  # the grpc.aio server, used on its loop's thread only
        self._pool: futures.ThreadPoolExecutor | None = None  # where the Export handlers run
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: futures.Future[None] | None = None  # the server's stop, once asked

    def start(self) -> bool:
        """Bind and serve; False (after one logged warning) when the port cannot be bound."""
        if not self.port:
            return False
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        if not self.shared and _taken(self.host, self.port):  # grpcio's own log line says it less clearly
            log.warning("%s", port_taken(address))
            return False
        settings = self.app.config["LIVE_MONITOR_SETTINGS"]
        self._pool = futures.ThreadPoolExecutor(
            max_workers=settings["threads"], thread_name_prefix="otlp-grpc"
        )
        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="otlp-grpc-loop", daemon=True)
        self._thread.start()
        bound = asyncio.run_coroutine_threadsafe(
            self._serve(address, settings["max_body_bytes"]), loop
        ).result()
        if not bound:
            log.warning("%s", port_taken(address))
            self._end_loop()
            return False
        self.port, self.listening = bound, True
        return True

    async def _serve(self, address: str, max_body_bytes: int) -> int:
        """On the loop's thread: make the server, bind and start it; the port bound, 0 when taken."""
        server = grpc.aio.server(
            migration_thread_pool=self._pool,  # the handlers are plain functions: run there
            handlers=[_handler(signal, self._export) for signal in SIGNALS.values()],
            options=[
                ("grpc.max_receive_message_length", max_body_bytes),
                ("grpc.so_reuseport", int(self.shared)),
            ],
        )
        try:
            bound = int(server.add_insecure_port(address))
        except RuntimeError:  # grpcio raises when the bind fails (older versions returned 0)
            bound = 0
        if not bound:
            await server.stop(None)
            return 0
        await server.start()
        self._server = server
        return bound

    def stop(self, grace: float | None = None, wait: bool = True) -> None:
        """Refuse new calls and let those in flight finish within ``grace`` seconds; ``wait``
        for them (a second call only waits for the first one's calls)."""
        if self._server is not None and self._stopped is None and self._loop is not None:
            self._stopped = asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop)
            self.listening = False
        if wait and self._stopped is not None:
            self._stopped.result()
            self._end_loop()

    def _end_loop(self) -> None:
        """Stop the event loop and its thread, and the handlers' pool."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def status(self) -> dict[str, Any]:
        """What ``/status`` shows as ``otlp_grpc``."""
        return {"port": self.port, "listening": self.listening}

    def _export(self, signal: Signal, body: bytes, context: grpc.ServicerContext) -> bytes:
        """One Export call, answered as ``POST /v1/traces`` would be, in gRPC status codes."""
        monitor: LiveExecutionMonitor = self.app.extensions["live_monitor"]
        try:
            batch = self._batch(signal, body, dict(context.invocation_metadata()))
            if batch.events:
                monitor.accept(batch.events)
        except StoreUnavailable as exc:
            self._abort(context, signal, ApiError(503, str(exc)))
        except ApiError as exc:
            self._abort(context, signal, exc)
        if batch.rejected:
            monitor.store.reject(f"otlp: {reason}" for reason in batch.rejected)
        receiver: OtlpReceiver = self.app.extensions["live_monitor.otlp"]
        receiver.count(batch, signal.name)
        return export_response(batch, signal, signal.messages())

    def _abort(self, context: grpc.ServicerContext, signal: Signal, exc: ApiError) -> NoReturn:
        """Refuse the call with the gRPC code of the HTTP status, counted as HTTP refusals are."""
        note_refusal(self.app, signal, exc)
        context.abort(STATUS_CODES[GRPC_CODES.get(exc.status, 2)], exc.message)
        raise AssertionError("grpc's abort() raises")  # pragma: no cover

    def _batch(self, signal: Signal, body: bytes, metadata: dict[str, Any]) -> SpanBatch:
        """The checks of the HTTP route (shutdown, credentials, load), then the decoded export."""
        monitor: LiveExecutionMonitor = self.app.extensions["live_monitor"]
        access: Access = self.app.extensions["live_monitor.access"]
        if monitor.draining:
            raise ApiError(503, "the monitor is shutting down")
        access.check_caller(lambda name: metadata.get(name.lower()), method="POST", ingest=True)
        access.check_load(self.app.config)
        return signal.convert(decode(body, True, signal))


def _taken(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be listened on now (most often: another server has it)."""
    try:
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError:
        return True
    return False


def port_taken(address: str) -> str:
    """The one warning a user sees when the OTLP/gRPC port is taken (the monitor serves on)."""
    return (
        f"warning: OTLP/gRPC is off: cannot listen on {address}, the port is taken (an "
        "OpenTelemetry collector?); choose another with --otlp-grpc-port, or 0 to turn it off"
    )


def _handler(signal: Signal, export: Callable[[Signal, bytes, Any], bytes]) -> grpc.GenericRpcHandler:
    """The service's Export method on raw bytes, so a malformed message is INVALID_ARGUMENT
    (grpcio answers a failing deserializer with INTERNAL)."""
    (service,) = signal.messages().DESCRIPTOR.services_by_name.values()
    method = grpc.unary_unary_rpc_method_handler(lambda body, context: export(signal, body, context))
    return grpc.method_handlers_generic_handler(service.full_name, {"Export": method})
