"""Run the API on uvicorn. The socket is bound here, before uvicorn starts, so that an address in use is a plain
error naming it, and so that port 0 (any free port) reports the port it got."""

from __future__ import annotations

import ipaddress
import signal
import socket
from collections.abc import Callable

from keel.domain.errors import KeelError
from keel.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port`; a `KeelError` naming it when it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise KeelError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="check --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # listening from here on: a client that connects once the address is printed waits in the backlog for
        # uvicorn to start, instead of being refused
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise KeelError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (0: any free one), or stop what uses it",
        ) from None
    return sock


def run(settings: Settings, sock: socket.socket, *, on_ready: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then finish the requests in flight and return: being asked to stop is how a
    server ends well, so it returns normally (exit 0) instead of dying of the signal uvicorn raises again once it has
    shut down."""
    import uvicorn

    from keel.api.app import create_app

    config = uvicorn.Config(create_app(settings), log_level="info", access_log=True, server_header=False)
    server = uvicorn.Server(config)
    asked: list[int] = []
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda number, _frame: asked.append(number)) for sig in stops}
    try:
        if on_ready is not None:
            on_ready()
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
