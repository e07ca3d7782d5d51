#!/usr/bin/env python3
"""Kernel TCP clients for pcaps/record.sh: each scenario talks to an xtcp server (xtcp-echo
or xtcp-im) from inside the recording namespace, with plain Python sockets, and checks the
answers it gets (a scenario that does not get what it expects exits 1, so a bad recording is
never kept). Payloads are fixed (seeded), so a new recording holds the same bytes."""
import random
import socket
import struct
import sys
import threading
import time

SERVER = "198.18.0.2"
TIMEOUT = 10.0


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(TIMEOUT)
    s.connect((SERVER, port))
    return s


def recv_exactly(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise SystemExit("connection closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def expect_eof(s):
    rest = s.recv(1)
    if rest != b"":
        raise SystemExit("expected the server's FIN, got %r" % rest)


def payload(n, seed):
    rng = random.Random(seed)
    return bytes(rng.randrange(32, 127) for _ in range(n))


def echo_while_writing(s, data, piece):
    """Writes data in pieces while a thread reads the echo; checks it."""
    got = []
    t = threading.Thread(target=lambda: got.append(recv_exactly(s, len(data))))
    t.start()
    for i in range(0, len(data), piece):
        s.sendall(data[i:i + piece])
    t.join()
    if got[0] != data:
        raise SystemExit("echo differs")


def echo_roundtrip(s, data):
    s.sendall(data)
    got = recv_exactly(s, len(data))
    if got != data:
        raise SystemExit("echo differs")


# ---- echo scenarios --------------------------------------------------------------------
def echo_hello(port):
    s = connect(port)
    echo_roundtrip(s, b"hello, xtcp\n")
    echo_roundtrip(s, b"a second line\n")
    s.shutdown(socket.SHUT_WR)
    expect_eof(s)
    s.close()


def echo_bulk(port):
    """64 KiB up and the same 64 KiB back, read while writing (both directions busy)."""
    s = connect(port)
    echo_while_writing(s, payload(64 * 1024, 1), 64 * 1024)
    s.shutdown(socket.SHUT_WR)
    expect_eof(s)
    s.close()


def echo_interleaved(port):
    """16 connections open at once, their requests interleaved one line at a time."""
    socks = [connect(port) for _ in range(16)]
    for rnd in range(3):
        for i, s in enumerate(socks):
            s.sendall(b"flow %02d round %d\n" % (i, rnd))
        for i, s in enumerate(socks):
            line = b"flow %02d round %d\n" % (i, rnd)
            if recv_exactly(s, len(line)) != line:
                raise SystemExit("interleaved echo differs")
    for s in socks:
        s.shutdown(socket.SHUT_WR)
    for s in socks:
        expect_eof(s)
        s.close()


def echo_lossy(port):
    """Under the recording's nftables loss (record.sh): 24 KiB in 1 KiB writes, echoed."""
    s = connect(port)
    echo_while_writing(s, payload(24 * 1024, 2), 1024)
    s.shutdown(socket.SHUT_WR)
    expect_eof(s)
    s.close()


def echo_zero_window(port):
    """A client with a small receive buffer that stops reading: its window closes, the server
    probes it; a second later it reads everything."""
    s = connect(port, rcvbuf=4096)
    data = payload(48 * 1024, 3)
    s.setblocking(False)
    sent = 0
    deadline = time.time() + 3
    while sent < len(data) and time.time() < deadline:
        try:
            sent += s.send(data[sent:sent + 4096])
        except BlockingIOError:
            time.sleep(0.05)
    time.sleep(1.0)
    s.setblocking(True)
    s.settimeout(TIMEOUT)
    s.sendall(data[sent:])
    if recv_exactly(s, len(data)) != data:
        raise SystemExit("zero-window echo differs")
    s.shutdown(socket.SHUT_WR)
    expect_eof(s)
    s.close()


def echo_closes(port):
    """Three ends: the client's FIN (server FIN after), a RST from the client (SO_LINGER 0)
    after an echo, and a RST right after the handshake."""
    a = connect(port)
    echo_roundtrip(a, b"closing with FIN\n")
    a.shutdown(socket.SHUT_WR)
    expect_eof(a)
    a.close()
    b = connect(port)
    echo_roundtrip(b, b"closing with RST\n")
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()
    c = connect(port)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    time.sleep(0.2)


# ---- IM scenarios ------------------------------------------------------------------------
class Im:
    def __init__(self, port):
        self.s = connect(port)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise SystemExit("IM connection closed; had %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ask(self, request, want):
        self.s.sendall(request)
        got = self.line()
        if got != want:
            raise SystemExit("%r: expected %r, got %r" % (request, want, got))

    def expect(self, want):
        got = self.line()
        if got != want:
            raise SystemExit("expected push %r, got %r" % (want, got))


def im_chat(port):
    alice = Im(port)
    alice.ask(b"LOGIN alice\n", "OK")
    bob = Im(port)
    bob.ask(b"LOGIN bob\n", "OK")
    alice.expect("ONLINE bob")
    alice.ask(b"MSG bob hello bob\n", "OK")
    bob.expect("FROM alice hello bob")
    bob.ask(b"MSG alice hi  alice, two spaces kept\n", "OK")
    alice.expect("FROM bob hi  alice, two spaces kept")
    alice.ask(b"LIST\n", "USERS alice bob")
    bob.ask(b"QUIT\n", "BYE")
    expect_eof(bob.s)
    bob.s.close()
    alice.expect("OFFLINE bob")
    alice.s.shutdown(socket.SHUT_WR)
    expect_eof(alice.s)
    alice.s.close()


def im_errors(port):
    c = Im(port)
    c.ask(b"LIST\n", "ERR not-logged-in")
    c.ask(b"MSG bob hi\n", "ERR not-logged-in")
    c.ask(b"WATCH bob\n", "ERR not-logged-in")
    c.ask(b"HELLO\n", "ERR unknown-command")
    c.ask(b"\n", "ERR empty-line")
    c.ask(b"   \r\n", "ERR empty-line")
    c.ask(b"LOGIN bad/name\n", "ERR bad-name")
    c.ask(b"LOGIN " + b"x" * 33 + b"\n", "ERR bad-name")
    c.ask(b"LOGIN carol extra\n", "ERR bad-name")
    c.ask(b"LOGIN carol\n", "OK")
    c.ask(b"LOGIN carol\n", "ERR already-logged-in")
    d = Im(port)
    d.ask(b"LOGIN carol\n", "ERR name-taken")
    d.s.close()
    c.ask(b"MSG nobody hi\n", "ERR offline")
    c.ask(b"MSG carol\n", "ERR usage MSG to text")
    c.ask(b"LIST all\n", "ERR usage LIST")
    c.ask(b"WATCH\n", "ERR usage WATCH name")
    c.ask(b"L" * 1100 + b"\n", "ERR line-too-long")
    c.ask(b"LIST\n", "USERS carol")
    c.ask(b"QUIT\n", "BYE")
    expect_eof(c.s)
    c.s.close()


def im_resets(port):
    """A watcher hears of a user who resets (SO_LINGER 0) and of one whose line is longer
    than the server can frame (8192 bytes: the stack resets that connection)."""
    w = Im(port)
    w.ask(b"LOGIN watcher\n", "OK")
    w.ask(b"WATCH dave\n", "OK")
    w.ask(b"WATCH erin\n", "OK")
    d = Im(port)
    d.ask(b"LOGIN dave\n", "OK")
    w.expect("ONLINE dave")
    d.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    d.s.close()
    w.expect("OFFLINE dave")
    e = Im(port)
    e.ask(b"LOGIN erin\n", "OK")
    w.expect("ONLINE erin")
    try:
        e.s.sendall(b"M" * 9000 + b"\n")
        while e.s.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    e.s.close()
    w.expect("OFFLINE erin")
    w.s.shutdown(socket.SHUT_WR)
    expect_eof(w.s)
    w.s.close()


SCENARIOS = {
    "echo-hello": echo_hello,
    "echo-bulk": echo_bulk,
    "echo-interleaved": echo_interleaved,
    "echo-lossy": echo_lossy,
    "echo-zero-window": echo_zero_window,
    "echo-closes": echo_closes,
    "im-chat": im_chat,
    "im-errors": im_errors,
    "im-resets": im_resets,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SCENARIOS:
        sys.exit("usage: clients.py SCENARIO PORT (scenarios: %s)" % ", ".join(SCENARIOS))
    SCENARIOS[sys.argv[1]](int(sys.argv[2]))
