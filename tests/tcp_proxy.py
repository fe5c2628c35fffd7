"""A loopback TCP proxy in front of the test database, standing in for RDS Proxy: clients
connect over TCP as the functions do in AWS, and the test can cut every client connection at
once, as a proxy restart or a failover does (a TCP reset, not a polite goodbye), or take the
database away altogether (connections refused) and bring it back on the same address."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to the database's unix socket (or host and port)."""

    target: str | tuple[str, int]
    port: int = field(init=False)
    _listener: socket.socket = field(init=False)
    _pairs: list[tuple[socket.socket, socket.socket]] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stopped: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self._listen(0)

    def _listen(self, port: int) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def url(self, database_url: str) -> str:
        """``database_url`` (the test database's) reached through this proxy."""
        from flex_shared.database_url import parse_database_url

        url, _ = parse_database_url(database_url)
        return url.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def _open_upstream(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            return upstream
        return socket.create_connection(self.target)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            upstream = self._open_upstream()
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def reset_all(self) -> int:
        """Cut every connection: the clients get a TCP reset, the database sees its clients
        leave. Returns how many connections were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            upstream.close()
        return len(pairs)

    def _stop_listening(self) -> None:
        # shutdown() first: a bare close() leaves the thread blocked in accept() listening on
        # (some platforms refuse shutdown() on a listener: close() is all they need).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def go_down(self) -> None:
        """The database is gone: connections cut, new ones refused."""
        self._stop_listening()
        self.reset_all()

    def come_back(self) -> None:
        """The database is back, on the same address."""
        self._listen(self.port)

    def stop(self) -> None:
        self._stopped.set()
        self._stop_listening()
        self.reset_all()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # one side was cut: the other pump ends too


@contextmanager
def tcp_proxy(database_url: str) -> Iterator[TcpProxy]:
    """A proxy in front of the database of ``database_url`` (its unix socket or host)."""
    from flex_shared.database_url import parse_database_url

    url, transport = parse_database_url(database_url)
    target = transport.get("unix_sock") or (url.host or "127.0.0.1", url.port or 5432)
    proxy = TcpProxy(target)
    try:
        yield proxy
    finally:
        proxy.stop()
