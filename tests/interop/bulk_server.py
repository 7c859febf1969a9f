#!/usr/bin/env python3
"""A minimal, independent RFC 6926 Bulk Leasequery server, written from the RFC text on scapy's DHCP codec, to
test leasewire's requestor against a peer whose protocol code is not leasewire's.

    bulk_server.py PORT BINDINGS.json

BINDINGS.json: [{"ip": "10.0.0.5", "mac": "020000000005", "state": 2, "start": 100, "expires": 600,
                  "relay_id": "72656c6179"}, ...] with times in seconds relative to now (start: seconds ago,
expires: seconds ahead; without "start", no start-time-of-state is sent, and with "omit_state": true no
dhcp-state, as Kea 3.2 does; data-source is never sent). Answers every DHCPBULKLEASEQUERY on the connection: all, by MAC, by relay-id; replies
in DHCPLEASEACTIVE (state 2) or DHCPLEASEUNASSIGNED, server-identifier in the first only (RFC 6926 §7.3),
base-time and relative times (§6.2.3-6.2.4), then DHCPLEASEQUERYDONE (§8.2). Prints "ready" when listening.
"""
import json
import socket
import struct
import sys
import time

from scapy.layers.dhcp import BOOTP, DHCP, DHCPOptions, DHCPRevOptions, DHCPTypes
from scapy.fields import ByteField, IntField, StrField

for code, name in {14: "bulk_leasequery", 15: "leasequery_done"}.items():
    DHCPTypes[code] = name
for code, field in {151: StrField("status-code", b""), 152: IntField("base-time", 0),
                    153: IntField("start-time-of-state", 0), 156: ByteField("dhcp-state", 0)}.items():
    DHCPOptions[code] = field
    DHCPRevOptions[field.name] = (code, field)

SERVER_ID = "192.0.2.1"


def option(pkt, name):
    for o in pkt[DHCP].options:
        if isinstance(o, tuple) and o[0] == name:
            return o[1]
    return None


def sub_option(rai, code):
    i = 0
    while i + 1 < len(rai):
        c, n = rai[i], rai[i + 1]
        if c == code:
            return rai[i + 2:i + 2 + n]
        i += 2 + n
    return None


def frame(pkt):
    b = bytes(pkt)
    return struct.pack("!H", len(b)) + b


def answer(q, bindings):
    now = int(time.time())
    mac = q.chaddr[:q.hlen] if q.hlen else b""
    rai = option(q, "relay_agent_information")
    relay_id = sub_option(rai, 12) if rai else None
    out = []
    for b in bindings:
        if mac and bytes.fromhex(b["mac"]) != mac:
            continue
        if relay_id is not None and bytes.fromhex(b.get("relay_id", "")) != relay_id:
            continue
        opts = [("message-type", 13 if b["state"] == 2 else 11)]
        if not out:
            opts.append(("server_id", SERVER_ID))
        # Like Kea, a binding may come without start-time-of-state ("start" absent) or without dhcp-state
        # ("omit_state"); data-source (157) is never sent.
        opts.append(("base-time", now))
        if "start" in b:
            opts.append(("start-time-of-state", b["start"]))
        if not b.get("omit_state"):
            opts.append(("dhcp-state", b["state"]))
        if b["state"] == 2:
            opts.append(("lease_time", b["expires"]))
        if "relay_id" in b:
            rid = bytes.fromhex(b["relay_id"])
            opts.append(("relay_agent_information", bytes([12, len(rid)]) + rid))
        opts.append("end")
        chaddr = bytes.fromhex(b["mac"])
        out.append(BOOTP(op=2, xid=q.xid, ciaddr=b["ip"], htype=1, hlen=len(chaddr), chaddr=chaddr.ljust(16, b"\0"))
                   / DHCP(options=opts))
    done = [("message-type", 15)]
    if not out:
        done.append(("server_id", SERVER_ID))
    out.append(BOOTP(op=2, xid=q.xid) / DHCP(options=done + ["end"]))
    return out


def serve(conn, bindings):
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
            n = struct.unpack("!H", buf[:2])[0]
            q = BOOTP(buf[2:2 + n])
            buf = buf[2 + n:]
            if option(q, "message-type") != 14:
                return  # RFC 7724 §8.1.1: anything else closes the connection
            conn.sendall(b"".join(frame(p) for p in answer(q, bindings)))


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    bindings = json.load(open(path))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    print("ready", flush=True)
    while True:
        conn, _ = ls.accept()
        try:
            serve(conn, bindings)
        finally:
            conn.close()


if __name__ == "__main__":
    main()
