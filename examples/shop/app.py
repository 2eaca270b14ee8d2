"""A small shop instrumented for the Live Execution Monitor: the README's snippets, running.

The backend is Flask with ``backend_logging_config.init_app`` (one ``http`` event per request,
traced); the page (``static/index.html`` and ``static/shop.js``) loads the monitor's browser
logger from the monitor itself and calls the shop's JSON API, so every request reaches the
monitor from both sides with one trace id. ``POST /api/checkout`` always fails with a 500, so
there is an error to see. Run the monitor, then::

    python examples/shop/app.py --port 8000 --monitor-url http://localhost:5001

and open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request, send_from_directory
from waitress import create_server

try:
    from backend_logging_config import configure_logging, init_app, track
except ImportError:  # run from the repository; in your app, copy the file next to yours
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from backend_logging_config import configure_logging, init_app, track

STATIC = Path(__file__).resolve().parent / "static"
PRODUCTS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "name": "Espresso beans", "price": 14.5},
    2: {"id": 2, "name": "Pour-over kettle", "price": 42.0},
    3: {"id": 3, "name": "Ceramic mug", "price": 9.9},
    4: {"id": 4, "name": "Hand grinder", "price": 65.0},
}
ORDERS: dict[int, dict[str, Any]] = {
    1001: {"id": 1001, "status": "shipped", "items": [{"product_id": 1, "quantity": 2}]}
}
log = logging.getLogger("shop")


class PaymentUnavailable(Exception):
    """The (pretend) payment provider is down: every checkout fails, on purpose."""


def _bad_request(message: str) -> tuple[Response, int]:
    return jsonify(error=message), 400


def create_app(monitor_url: str = "http://localhost:5001") -> Flask:
    """Build the shop: JSON API under /api, the page at /, instrumented for ``monitor_url``.

    Raises ValueError when ``monitor_url`` is not an http(s) URL. The shop keeps working when
    the monitor is down: the client drops what it cannot deliver and counts it.
    """
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    init_app(app, monitor_url=monitor_url)
    parts = urlsplit(monitor_url)
    monitor_origin = f"{parts.scheme}://{parts.netloc}"
    # No inline script anywhere: the page may load code from itself and the monitor only.
    csp = (
        f"default-src 'self'; script-src 'self' {monitor_origin}; connect-src 'self' {monitor_origin}; "
        "style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    cart: list[dict[str, Any]] = []
    cart_lock = threading.Lock()

    @app.after_request
    def security_headers(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = csp
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.get("/")
    def index() -> Response:
        return send_from_directory(STATIC, "index.html")

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.get("/api/config")
    def config() -> Response:
        return jsonify(monitor_url=monitor_url.rstrip("/"))

    @app.get("/api/products")
    def products() -> Response:
        query = request.args.get("q", "").strip().lower()
        with track("db", "list_products"):
            found = [p for p in PRODUCTS.values() if query in p["name"].lower()]
        return jsonify(products=found)

    @app.get("/api/products/<int:product_id>")
    def product(product_id: int) -> Response | tuple[Response, int]:
        with track("db", "load_product"):
            found = PRODUCTS.get(product_id)
        if found is None:
            return jsonify(error=f"no product {product_id}"), 404
        return jsonify(found)

    @app.post("/api/cart")
    def add_to_cart() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _bad_request("send a JSON object: {product_id, quantity}")
        product_id, quantity = body.get("product_id"), body.get("quantity", 1)
        if product_id not in PRODUCTS:
            return _bad_request(f"unknown product_id {product_id!r}")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 99:
            return _bad_request("quantity must be a whole number from 1 to 99")
        with cart_lock:
            cart.append({"product_id": product_id, "quantity": quantity})
            items = list(cart)
        total = sum(PRODUCTS[item["product_id"]]["price"] * item["quantity"] for item in items)
        return jsonify(items=items, count=len(items), total=round(total, 2)), 201

    @app.get("/api/orders/<int:order_id>")
    def order(order_id: int) -> Response | tuple[Response, int]:
        with track("db", "load_order"):
            found = ORDERS.get(order_id)
        if found is None:
            return jsonify(error=f"no order {order_id}"), 404
        return jsonify(found)

    @app.post("/api/checkout")
    def checkout() -> Response:
        # The card and the email stay here: nothing below logs or forwards the body.
        with track("payments", "charge"):
            raise PaymentUnavailable("payment provider unavailable")

    @app.errorhandler(PaymentUnavailable)
    def payment_failed(exc: PaymentUnavailable) -> tuple[Response, int]:
        log.error("checkout failed: %s", exc, extra={"component": "payments", "action": "checkout"})
        return jsonify(error=str(exc)), 500

    return app


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 0 to 65535, got {text!r}")
    return port


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # leave server.run(), so queued events are flushed at exit


def main(argv: list[str] | None = None) -> int:
    """Serve the shop with waitress on 127.0.0.1 until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description="Example shop instrumented for the Live Execution Monitor.")
    parser.add_argument("--port", type=_port, default=8000, help="port to listen on (0: a free one)")
    parser.add_argument(
        "--monitor-url",
        default=os.environ.get("LIVE_MONITOR_URL", "http://localhost:5001"),
        help="the monitor's base URL (default: $LIVE_MONITOR_URL or http://localhost:5001)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        configure_logging(level="INFO", monitor_url=args.monitor_url)
        server = create_server(create_app(args.monitor_url), host="127.0.0.1", port=args.port)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"serving on http://127.0.0.1:{server.effective_port}", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
