#!/usr/bin/env python3
# Writes the seed corpus of fuzz_tcp (fuzz/corpus/fuzz_tcp/): a few hand-made operation
# sequences in the input format documented at the top of fuzz_tcp.cc. Run once after a
# change of that format:  python3 fuzz/make_tcp_seeds.py
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_tcp")

# Flows and held handles the set-up creates, in order (see World::setup).
C0, C1, C2, C3, C4, TW, C6, SYNRCVD, SYNSENT, UNACCEPTED = range(10)
NEW = 0xF0  # a 4-tuple not used yet
H = {"c0": 0, "c1": 1, "c2": 2, "c3": 3, "c4": 4, "c6": 5, "c8": 6}
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def cfg(variant, listen=0):
    # Byte 0: configuration variant (make_config); byte 1: listener options (listen_options).
    return bytes([variant, listen])


def aimed(flow, flags, seq=0, ack=0, window=65535, payload=0, ack_nxt=False, ts=False,
          twice=False, sack=None, synopts=None, raw=None, new_port=None):
    ctl = (0x10 if ack_nxt else 0) | (0x20 if twice else 0) | (0x40 if ts else 0)
    ctl2 = (0x02 if sack else 0) | (0x04 if synopts else 0) | (0x08 if raw else 0)
    if ctl2:
        ctl |= 0x80
    b = bytes([0, flow])
    if new_port is not None:
        b += bytes([new_port])
    b += bytes([flags, ctl]) + (bytes([ctl2]) if ctl2 else b"")
    b += struct.pack(">hhHH", seq, ack, window, payload)
    if sack:
        b += bytes([len(sack) - 1])
        for left, length in sack:
            b += struct.pack(">hH", left, length)
    if synopts:
        b += bytes([synopts[0]]) + (struct.pack(">H", synopts[1]) if synopts[0] & 1 else b"")
    if raw:
        b += bytes([len(raw)]) + raw
    return b


def time(mode, v=0):
    return bytes([4, mode]) + struct.pack(">H", v)


def app(kind, handle=0, arg=0, high=False):
    # kind % 11 picks the call; bit 7 set: send up to 65535 bytes (else arg % 4096), or read
    # without consumed().
    k = next(b for b in range(256) if b % 11 == kind and bool(b & 0x80) == high)
    return bytes([5, k, handle]) + struct.pack(">H", arg)


def icmp(flow, kind, mtu=0, seq=0):
    return bytes([7, flow, kind]) + struct.pack(">Hh", mtu, seq)


def raw(ctrl, packet):
    return bytes([3, ctrl]) + struct.pack(">H", len(packet)) + packet


def tcp_packet(sport, dport, seq, ack, flags, payload=b""):
    hdr = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(hdr) + len(payload)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, 6, 0,
                     bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    return ip + hdr + payload


NEXT = 2  # time mode: jump to the next deadline
(SEND, READ, CLOSE, ABORT, SHUTDOWN, ACCEPT, CONNECT, NODELAY, KEEPALIVE, LISTEN,
 CONSUMED) = range(11)

SEEDS = {
    # c1's data acknowledged, then more sent and read on c3, orderly close of both.
    "ack_all_and_close": cfg(0) + aimed(C1, ACK, ack=0, ack_nxt=True)
    + app(SEND, H["c1"], 2000) + app(READ, H["c3"]) + aimed(C1, ACK, ack_nxt=True)
    + app(CLOSE, H["c1"]) + app(CLOSE, H["c3"]),
    # The hole below c2's out-of-order data filled (peer ISN wraps), then read.
    "fill_ooo_gap": cfg(0x01) + aimed(C2, ACK | PSH, seq=0, payload=1000, ts=True)
    + app(READ, H["c2"]) + aimed(C2, ACK, seq=500, payload=1460, ts=True),
    # RTO retransmissions of c1's data, then a late ACK.
    "rto_backoff": cfg(0) + time(NEXT) + time(NEXT) + time(NEXT) + aimed(C1, ACK, ack=536)
    + time(NEXT),
    # Fast retransmit on c1: SACK is off there, three duplicate ACKs; then on c0 with SACK.
    "dupacks": cfg(0x04) + aimed(C1, ACK) * 4 + aimed(C1, ACK, ack_nxt=True)
    + app(SEND, H["c0"], 4000) + aimed(C0, ACK, ts=True, sack=[(1000, 1000)]) * 3,
    # Exact RST on c0, in-window RST (challenge) on c3, SYN on an established flow.
    "resets": cfg(0) + aimed(C0, RST) + aimed(C3, RST | ACK, seq=5) + aimed(C6, SYN, seq=100),
    # A new SYN on the TIME-WAIT 4-tuple (RFC 6191 reuse), completed and accepted.
    "time_wait_reuse": cfg(0) + aimed(TW, SYN, seq=10, ts=True, synopts=(0x07, 1400))
    + aimed(TW, ACK, seq=11, ack_nxt=True, ts=True) + app(ACCEPT) + time(1, 30000),
    # Zero window from the peer while c0 has data: persist probes, then the window opens.
    "zero_window": cfg(0) + aimed(C0, ACK, window=0, ts=True) + app(SEND, H["c0"], 3000)
    + time(NEXT) + time(NEXT) + aimed(C0, ACK, window=1024, ts=True),
    # Peer FIN on c0, app close (LAST-ACK), final ACK.
    "passive_close": cfg(0x08) + aimed(C0, FIN | ACK, ts=True) + app(CLOSE, H["c0"])
    + aimed(C0, ACK, seq=1, ack_nxt=True, ts=True),
    # ICMP fragmentation needed for c1's data (RFC 1191), then port unreachable on SYN-SENT.
    "icmp_pmtu": cfg(0x02) + icmp(C1, 0, mtu=300) + icmp(SYNSENT, 1) + time(NEXT),
    # The SYN-SENT connection answered, simultaneous open, and a new connect().
    "syn_sent": cfg(0) + aimed(SYNSENT, SYN | ACK, ack_nxt=True, synopts=(0x03, 1000))
    + app(CONNECT, 0, 0x11) + aimed(SYNSENT, SYN, synopts=(0x01, 536)),
    # SYN flood on the listener (cookies), half-open completion, unlisten.
    "listener": cfg(0x80) + b"".join(aimed(NEW, SYN, new_port=p, synopts=(0x01, 1460))
                                         for p in range(6))
    + aimed(SYNRCVD, ACK, seq=1, ack_nxt=True) + app(ACCEPT) + app(ACCEPT) + app(LISTEN, 0, 0),
    # A raw packet for the closed port 9 and a raw segment with a fixed checksum.
    "raw": cfg(0) + raw(0x0f, tcp_packet(40000, 9, 1234, 0, SYN))
    + raw(0x06, tcp_packet(40000, 7, 1000001, 0, ACK, b"hello")),
    # Keepalive on c3 and an idle hour; FIN-WAIT-2 closed by the app (linger timer).
    "idle": cfg(0x10) + app(KEEPALIVE, H["c3"], 1) + app(CLOSE, H["c4"]) + time(1, 60000)
    + time(1, 60000),
    # Receive window filled on c0 (small receive store), read, window update.
    "fill_window": cfg(0) + b"".join(aimed(C0, ACK, seq=i * 1460, payload=1460, ts=True)
                                         for i in range(5))
    + app(READ, H["c0"]) + time(NEXT),
    # Simultaneous close on c0: our FIN, the peer's FIN not acknowledging it (CLOSING),
    # then the ACK (TIME-WAIT).
    "simultaneous_close": cfg(0) + app(SHUTDOWN, H["c0"]) + aimed(C0, FIN | ACK, ts=True)
    + aimed(C0, ACK, ack_nxt=True, ts=True) + time(NEXT),
    # SACK loss recovery on c0: 8000 bytes in flight, the peer SACKs all but the first two
    # segments: the first is resent at once (RFC 6675 IsLost), then the second hole.
    "sack_recovery": cfg(0x06) + app(SEND, H["c0"], 8000, high=True)
    + aimed(C0, ACK, ts=True, sack=[(2896, 5104)])
    + aimed(C0, ACK, ts=True, sack=[(2896, 5104)]) + aimed(C0, ACK, ack=1448, ts=True,
                                                           sack=[(1448, 3656)]),
    # Simultaneous open: the SYN-SENT connection gets a bare SYN, then the peer's SYN-ACK.
    "simultaneous_open": cfg(0) + aimed(SYNSENT, SYN, synopts=(0x07, 1460))
    + aimed(SYNSENT, SYN | ACK, seq=-1, ack_nxt=True, synopts=(0x07, 1460)) + app(READ, H["c8"]),
    # XTCP application-controlled ACKs (and a 40 ms deadline) on the listener: data on c0
    # is ACKed once read, the answer carries the ACK; then the deadline on c6.
    "app_ack": cfg(0, 0x03) + aimed(C0, ACK | PSH, payload=100, ts=True) + time(0, 10)
    + app(READ, H["c0"]) + app(SEND, H["c0"], 50) + aimed(C6, ACK, seq=1, payload=20)
    + time(NEXT) + app(CONSUMED, H["c6"]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        assert len(data) < 2048, name
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
