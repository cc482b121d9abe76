"""What the misbehaving servers of the stall tests (tests/badsmtp.py,
tests/badimap.py) share: a TCP listener on 127.0.0.1 at a free port
(`port`) that serves each connection on a daemon thread of its own with
self._serve(conn, *args), args being what self._accepted() returns (called
under the lock, once per connection), and closes it when _serve returns
or the connection fails (OSError). `connections` counts the
connections made; drop() closes every open one (a server replaced: what
it held is cut off), stop() the listener too. A subclass sets its own
fields before calling LoopbackServer.__init__, which starts listening."""
import socket
import threading


class LoopbackServer:
    def __init__(self):
        self.connections = 0
        self._lock = threading.Lock()
        self._conns = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accepted(self):
        return ()

    def _serve(self, conn, *args):
        raise NotImplementedError

    def drop(self):
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def stop(self):
        self._stopped = True
        self._sock.close()
        self.drop()

    def _accept(self):
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
                args = self._accepted()
            threading.Thread(target=self._run, args=(conn, *args), daemon=True).start()

    def _run(self, conn, *args):
        try:
            self._serve(conn, *args)
        except OSError:
            pass  # the client or drop() closed the connection
        finally:
            try:
                conn.close()
            except OSError:
                pass
