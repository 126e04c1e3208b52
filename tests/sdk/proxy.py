"""Two tiny TCP proxies in front of the relayer, for what a real network does to a client.

`DropResponses` speaks just enough HTTP/1.1 (Content-Length bodies) to forward a request, read the
relayer's whole answer, and then — for the first `drop` POSTs — close the client's connection instead of
answering: the request was executed, the answer was lost. `Pipe` copies bytes both ways and `cut()`
closes every connection it carries (a dropped event stream).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


def _listener() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def _read_message(sock: socket.socket, buf: bytearray) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length body (or none) from `sock`; None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    total = len(head) + 4 + length
    while len(buf) < total:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    message = bytes(buf[:total])
    del buf[:total]
    return message


class _Proxy:
    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port))
        self._listener = _listener()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def cut(self) -> None:
        with self._lock:
            socks, self._open = self._open, set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self._track(client, upstream)
            threading.Thread(target=self._serve, args=(client, upstream), daemon=True).start()

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def running(self) -> Iterator[_Proxy]:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopped = True
            self._listener.close()
            self.cut()


class DropResponses(_Proxy):
    def __init__(self, upstream: str, drop: int = 1) -> None:
        super().__init__(upstream)
        self.drop = drop
        self.posts = 0  # POSTs that reached the relayer

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        cbuf, ubuf = bytearray(), bytearray()
        try:
            while True:
                request = _read_message(client, cbuf)
                if request is None:
                    break
                upstream.sendall(request)
                response = _read_message(upstream, ubuf)
                if response is None:
                    break
                if request.startswith(b"POST"):
                    with self._lock:
                        self.posts += 1
                        dropping = self.drop > 0
                        self.drop -= 1 if dropping else 0
                    if dropping:
                        break  # the relayer did the work; the client never hears of it
                client.sendall(response)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()


class Pipe(_Proxy):
    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=copy, args=(upstream, client), daemon=True).start()
        copy(client, upstream)
