#!/usr/bin/env python3
# Writes the seed corpus of fuzz_netpdu (fuzz/corpus/fuzz_netpdu/): valid NetPDU streams of
# both variants in the input format at the top of fuzz_netpdu.cc (mode byte, read-size
# seed, then the stream; variant 2: a control-length byte, control bytes, data bytes).
# Run once after a change of that format:  python3 fuzz/make_netpdu_seeds.py
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_netpdu")
MAGIC = 0x4E504455


def tlpdu(kind, session, seq, size, flags=0):
    return struct.pack(">BBHQII", kind, flags, 0, session, seq, size)


def inline_pdu(items):
    body = b"".join(tlpdu(k, s, q, len(p)) + p for k, s, q, p in items)
    return struct.pack(">IBBHIII", MAGIC, 1, 0, 0, 20, 20 + len(body), len(items)) + body


def split_pdu(lane, items):
    hdrs = b"".join(tlpdu(k, s, q, len(p)) for k, s, q, p in items)
    hlen = 20 + len(hdrs)
    total = hlen + sum(len(p) for _, _, _, p in items)
    return struct.pack(">IBBHIII", MAGIC, 1, 1, lane, hlen, total, len(items)) + hdrs


def main():
    os.makedirs(OUT, exist_ok=True)
    v1 = inline_pdu([(1, 7, 0, b""), (2, 7, 1, b"LOGIN alice\n"), (2, 0xFFFF, 0, b"x" * 40)])
    v1 += inline_pdu([(2, 7, 2, b"LIST\n"), (3, 7, 3, b"")])
    seeds = {
        "v1_plain": bytes([0x00, 0x11]) + v1,
        "v1_retry_keep": bytes([0x05, 0x63]) + v1,
        "v1_unknown_session": bytes([0x02, 0x01]) + v1,
    }
    # Variant 2: data bytes are dealt to the two data transports in runs of 16 (see the
    # harness), so the payloads here are 16 bytes long and alternate lanes 0 and 1.
    ctl = split_pdu(0, [(2, 1, 0, b"a" * 16)]) + split_pdu(1, [(2, 2, 0, b"b" * 16)])
    ctl += split_pdu(0, [(2, 1, 1, b"c" * 16), (2, 1, 2, b"")])
    data = b"a" * 16 + b"b" * 16 + b"c" * 16
    assert len(ctl) % 4 == 0 and len(ctl) // 4 < 256
    seeds["v2_plain"] = bytes([0x80, 0x21, len(ctl) // 4]) + ctl + data
    seeds["v2_retry_keep"] = bytes([0x85, 0x07, len(ctl) // 4]) + ctl + data
    for name, blob in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
