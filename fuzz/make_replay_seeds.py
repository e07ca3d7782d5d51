#!/usr/bin/env python3
# Writes the seed corpus of fuzz_replay (fuzz/corpus/fuzz_replay/) from the echo captures
# (pcaps/echo/*.pcap, LINKTYPE_RAW): each seed is the header documented at the top of
# fuzz_replay.cc and a capture's first packets, each with a 2-byte big-endian length. Large
# payloads are cut (the IPv4 total length is kept as captured, as a cut capture would have).
# Run once after a change of that format or of the captures:  python3 fuzz/make_replay_seeds.py
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PCAPS = os.path.join(HERE, "..", "pcaps", "echo")
OUT = os.path.join(HERE, "corpus", "fuzz_replay")

MAX_PACKETS = 24
MAX_PACKET_BYTES = 120
MAX_SEED_BYTES = 2048


def raw_packets(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    link_type = struct.unpack(endian + "I", data[20:24])[0]
    if link_type not in (101, 228):
        raise ValueError(f"{path}: link type {link_type}, not raw IPv4")
    at = 24
    while at + 16 <= len(data):
        incl = struct.unpack(endian + "IIII", data[at:at + 16])[2]
        yield data[at + 16:at + 16 + incl]
        at += 16 + incl


def seed(path, sel, addr=0, port=0, skip=0):
    out = bytearray(struct.pack(">B4sH", sel, bytes(addr), port))
    for n, pkt in enumerate(raw_packets(path)):
        if n < skip:
            continue
        if n - skip >= MAX_PACKETS:
            break
        pkt = pkt[:MAX_PACKET_BYTES]
        if len(out) + 2 + len(pkt) > MAX_SEED_BYTES:
            break
        out += struct.pack(">H", len(pkt)) + pkt
    return bytes(out)


SERVER = [198, 18, 0, 2]

SEEDS = {
    # Server guessed from the SYN, and the destination of packet 0 (the client's SYN).
    "handshake_default": ("handshake-default.pcap", 0x00),
    "handshake_bare": ("handshake-bare.pcap", 0x00),
    "handshake_no_timestamps": ("handshake-no-timestamps.pcap", 0x00),
    # Server given as the source of packet 1 (the SYN-ACK); addresses rewritten.
    "closes_rewrite": ("closes.pcap", 0x43, SERVER, 7),
    "interleaved": ("interleaved.pcap", 0x00),
    # The server given literally; the capture starts mid-stream (no SYN to guess from).
    "lossy_midstream": ("lossy.pcap", 0x80, SERVER, 7, 10),
    "bulk": ("bulk.pcap", 0x00),
    "zero_window": ("zero-window.pcap", 0x00),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (pcap, sel, *rest) in SEEDS.items():
        addr = rest[0] if len(rest) > 0 else [0, 0, 0, 0]
        port = rest[1] if len(rest) > 1 else 0
        skip = rest[2] if len(rest) > 2 else 0
        data = seed(os.path.join(PCAPS, pcap), sel, addr, port, skip)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
