#!/usr/bin/env python3
"""Writes the seed corpora of the session and option 82 fuzz targets (fuzz/seeds/<target>/): well-formed
protocol exchanges in each target's input encoding, so the fuzzer starts from deep inside the state machines.
Run from fuzz/: python3 make_seeds.py. Option 82 seeds also come from the ISC dhcpd datagrams in seeds/message."""
import os
import struct

T0 = 1_800_000_000


def message(op, mtype, xid, opts=(), ciaddr=b"\0\0\0\0", chaddr=b""):
    hdr = bytes([op, 1 if chaddr else 0, len(chaddr), 0]) + struct.pack(">IHH", xid, 0, 0)
    hdr += ciaddr + b"\0" * 12 + chaddr.ljust(16, b"\0") + b"\0" * 192
    body = hdr + bytes([99, 130, 83, 99]) + bytes([53, 1, mtype])
    for code, val in opts:
        body += bytes([code, len(val)]) + val
    return body + b"\xff"


def frame(m):
    return struct.pack(">H", len(m)) + m


def u32(v):
    return struct.pack(">I", v)


def rai(*subs):
    return b"".join(bytes([c, len(v)]) + v for c, v in subs)


PRL = (55, bytes([152, 51, 153, 91, 156, 82]))
RAI = rai((1, b"port-7"), (2, b"\x02\0\0\0\0\x07"), (12, b"relay-A"))


def write(target, name, data):
    with open(os.path.join("seeds", target, name), "wb") as f:
        f.write(data)


# --- option 82 -----------------------------------------------------------------------------------------
write("relay_agent", "circuit-remote-relay.bin", RAI)
write("relay_agent", "link-selection-override-port.bin", rai((5, bytes([10, 0, 0, 0])), (11, bytes([10, 0, 0, 1])), (19, b"")))
write("relay_agent", "empty-sub.bin", rai((1, b""), (2, b"x")))
for fn in sorted(os.listdir("seeds/message")):
    d = open(os.path.join("seeds/message", fn), "rb").read()
    i = 240
    while i < len(d):
        c = d[i]
        if c == 255:
            break
        if c == 0:
            i += 1
            continue
        n = d[i + 1]
        if c == 82:
            write("relay_agent", fn, d[i + 2 : i + 2 + n])
        i += 2 + n


# --- server session: setup byte, then ops (0 = receive <len> <bytes>, 4 = time <n*4 s>, 5 = live <last>,
# 6 = lagged, 7 = shutdown, 8 = peer closed, 9 = write blocked) --------------------------------------------
def receive(b):
    out = b""
    while b:
        chunk, b = b[:255], b[255:]
        out += bytes([0, len(chunk)]) + chunk
    return out


bulk_all = frame(message(1, 14, 1, [PRL]))
bulk_relay = frame(message(1, 14, 2, [PRL, (82, rai((12, b"relay-A")))]))
bulk_mac = frame(message(1, 14, 3, [PRL], chaddr=b"\x02\0\0\0\0\x03"))
bulk_time = frame(message(1, 14, 4, [PRL, (154, u32(T0 - 500)), (155, u32(T0))]))
active = frame(message(1, 16, 5, [PRL]))
active_catch_up = frame(message(1, 16, 6, [PRL, (154, u32(T0 - 600))]))
dhcptls = frame(message(1, 18, 7))
discover = frame(message(1, 1, 8, [(82, RAI)], chaddr=b"\x02\0\0\0\0\x09"))
# setup: bits 0-1 TLS policy (0 refuse, 1 offer, 2 require), bit 3 Active on, bits 4-5 queries, bits 2-7 store
write("server_session", "bulk-all.bin", bytes([0x40]) + receive(bulk_all))
write("server_session", "bulk-pipelined.bin", bytes([0x30]) + receive(bulk_all + bulk_relay + bulk_mac + bulk_time))
write("server_session", "bulk-then-timeout.bin", bytes([0x40]) + receive(bulk_time) + bytes([4, 80, 4, 255]))
write("server_session", "active-live.bin", bytes([0x48]) + receive(active) + bytes([5, 3, 5, 4, 5, 3, 4, 20, 6]))
write("server_session", "active-catch-up.bin", bytes([0x48]) + receive(active_catch_up) + bytes([5, 9, 7]))
write("server_session", "secure-active.bin", bytes([0x4A]) + receive(dhcptls) + receive(active) + bytes([5, 2]))
write("server_session", "offer-bulk.bin", bytes([0x49]) + receive(dhcptls) + receive(bulk_all))
write("server_session", "forbidden.bin", bytes([0x08]) + receive(discover))
write("server_session", "half-frame.bin", bytes([0x08]) + receive(bulk_all[:40]) + bytes([4, 3]))


# --- requestor session: setup byte (bit 0: 0 Bulk, 1 Active; bit 1 saved base-time; bit 2 secure), then ops
# (< 0x80: that many bytes from the server; 0x80-0xfe: time; 0xff: TLS established) ---------------------------
def server_bytes(b):
    out = b""
    while b:
        chunk, b = b[:127], b[127:]
        out += bytes([len(chunk)]) + chunk
    return out


def active_reply(xid, last, mtype=13, base=T0):
    return frame(message(2, mtype, xid, [(152, u32(base)), (51, u32(600)), (153, u32(100)), (156, bytes([2]))],
                         ciaddr=bytes([10, 0, 0, last]), chaddr=b"\x02\0\0\0\0" + bytes([last])))


def status(xid, code, base=T0, mtype=17):
    return frame(message(2, mtype, xid, [(151, bytes([code])), (152, u32(base))]))


done = frame(message(2, 15, 0x100, [(54, bytes([10, 0, 0, 1]))]))
write("requestor_session", "bulk-two-then-done.bin",
      bytes([0x00]) + server_bytes(active_reply(0x100, 3) + active_reply(0x100, 4, 11) + done))
write("requestor_session", "bulk-unknown-xid.bin", bytes([0x00]) + server_bytes(active_reply(0x999, 3)))
write("requestor_session", "active-catch-up.bin",
      bytes([0x03]) + server_bytes(active_reply(0x77, 3) + status(0x77, 7, T0 + 5) + active_reply(0x77, 4, 13, T0 + 9)))
write("requestor_session", "active-data-missing.bin", bytes([0x03]) + server_bytes(status(0x77, 5, T0 + 2)))
write("requestor_session", "active-secure.bin",
      bytes([0x07]) + server_bytes(frame(message(2, 18, 0x77))) + bytes([0xff]) + server_bytes(active_reply(0x77, 5)))
write("requestor_session", "active-keepalive-timeout.bin",
      bytes([0x01]) + server_bytes(status(0x77, 6)) + bytes([0x90, 0x9f]))
write("requestor_session", "active-terminated.bin", bytes([0x03]) + server_bytes(status(0x77, 2, T0 + 1)))
