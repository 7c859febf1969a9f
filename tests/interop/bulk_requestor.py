#!/usr/bin/env python3
"""An independent RFC 6926 Bulk Leasequery requestor, written from the RFC text (not from leasewire's code),
on scapy's DHCP codec. Used by leasewire's interop tests as a peer nobody in this project wrote the protocol
logic of.

    bulk_requestor.py SERVER PORT [--mac HEX | --client-id HEX | --relay-id HEX | --remote-id HEX]
                      [--start T] [--end T] [--extra-query] [--tls CERT KEY CA]

With --tls, the connection is secured first as RFC 7724 §7.2 describes (DHCPTLS with option 53 only, an answer
without a status, then a TLS handshake with CERT/KEY as the client certificate and the server's certificate
checked against CA) using Python's own `ssl` module (OpenSSL), not rustls.

Prints one JSON object: {"replies": [{"xid", "type", "ip", "state", "mac", "base_time", "start_time_of_state",
"lease_time", "cltt", "server_id"}...], "done": [{"xid", "status"}...], "errors": [...]}.
"""
import json
import socket
import ssl
import struct
import sys

from scapy.layers.dhcp import BOOTP, DHCP, DHCPOptions, DHCPRevOptions, DHCPTypes
from scapy.fields import ByteField, IntField, StrField

# RFC 6926 §6.2.1 and RFC 7724 §5.2.1 message types scapy does not know.
for code, name in {14: "bulk_leasequery", 15: "leasequery_done", 16: "active_leasequery",
                   17: "leasequery_status", 18: "tls"}.items():
    DHCPTypes[code] = name
# RFC 6926 §6.2.2-6.2.8 options.
NEW_OPTIONS = {
    151: StrField("status-code", b""),
    152: IntField("base-time", 0),
    153: IntField("start-time-of-state", 0),
    154: IntField("query-start-time", 0),
    155: IntField("query-end-time", 0),
    156: ByteField("dhcp-state", 0),
    157: ByteField("data-source", 0),
}
for code, field in NEW_OPTIONS.items():
    DHCPOptions[code] = field
    DHCPRevOptions[field.name] = (code, field)

STATES = {1: "AVAILABLE", 2: "ACTIVE", 3: "EXPIRED", 4: "RELEASED", 5: "ABANDONED", 6: "RESET", 7: "REMOTE",
          8: "TRANSITIONING"}


def build_query(xid, args):
    """RFC 6926 §7.2: message type 14, one primary query, qualifiers, and a parameter request list with
    base-time, lease time, start-time-of-state and client-last-transaction-time."""
    chaddr = b""
    opts = [("message-type", 14)]
    key = args.get("key")
    if key == "mac":
        chaddr = bytes.fromhex(args["value"])
    elif key == "client-id":
        opts.append(("client_id", bytes.fromhex(args["value"])))
    elif key in ("remote-id", "relay-id"):
        sub = 2 if key == "remote-id" else 12
        value = bytes.fromhex(args["value"])
        opts.append(("relay_agent_information", bytes([sub, len(value)]) + value))
    if "start" in args:
        opts.append(("query-start-time", int(args["start"])))
    if "end" in args:
        opts.append(("query-end-time", int(args["end"])))
    opts.append(("param_req_list", [152, 51, 153, 91, 156, 157, 54]))
    opts.append("end")
    pkt = BOOTP(op=1, xid=xid, htype=1, hlen=len(chaddr), chaddr=chaddr.ljust(16, b"\0")) / DHCP(options=opts)
    return bytes(pkt)


def frames(sock):
    """RFC 6926 §6.1: a 2-octet length, then the message."""
    buf = b""
    while True:
        while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
        n = struct.unpack("!H", buf[:2])[0]
        yield buf[2:2 + n]
        buf = buf[2 + n:]


def option(pkt, name):
    for o in pkt[DHCP].options:
        if isinstance(o, tuple) and o[0] == name:
            return o[1]
    return None


def main():
    server, port = sys.argv[1], int(sys.argv[2])
    args = {}
    rest = sys.argv[3:]
    i = 0
    extra = False
    while i < len(rest):
        flag = rest[i]
        if flag in ("--mac", "--client-id", "--relay-id", "--remote-id"):
            args["key"], args["value"] = flag[2:], rest[i + 1]
            i += 2
        elif flag in ("--start", "--end"):
            args[flag[2:]] = rest[i + 1]
            i += 2
        elif flag == "--extra-query":
            extra = True
            i += 1
        elif flag == "--tls":
            args["tls"] = rest[i + 1:i + 4]
            i += 4
        else:
            raise SystemExit(f"unknown argument {flag}")
    sock = socket.create_connection((server, port), timeout=30)
    out = {"replies": [], "done": [], "errors": []}
    if "tls" in args:
        try:
            sock = start_tls(sock, server, *args["tls"])
        except (OSError, ValueError) as e:
            out["errors"].append(f"tls: {e}")
            print(json.dumps(out))
            return
    xids = [0x5eed0001]
    queries = [build_query(xids[0], args)]
    if extra:
        # RFC 6926 §7.7: a second query on the same connection with its own xid.
        xids.append(0x5eed0002)
        queries.append(build_query(xids[1], {}))
    for q in queries:
        sock.sendall(struct.pack("!H", len(q)) + q)
    outstanding = set(xids)
    first = {}
    try:
        receive(sock, outstanding, first, out)
    except (OSError, ssl.SSLError) as e:
        out["errors"].append(f"receive: {e}")
    sock.close()
    print(json.dumps(out))


def start_tls(sock, server, cert, key, ca):
    """RFC 7724 §7.2: DHCPTLS carrying only option 53; an answer without a status code means go ahead; then
    TLS on the same connection, with a client certificate (mutual authentication, §8.1)."""
    hello = bytes(BOOTP(op=1, xid=0x7150) / DHCP(options=[("message-type", 18), "end"]))
    sock.sendall(struct.pack("!H", len(hello)) + hello)
    answer = BOOTP(next(frames(sock)))
    if option(answer, "message-type") != 18 or option(answer, "status-code") is not None:
        raise ValueError(f"DHCPTLS refused: {answer[DHCP].options}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    return ctx.wrap_socket(sock, server_hostname=server)


def receive(sock, outstanding, first, out):
    for frame in frames(sock):
        pkt = BOOTP(frame)
        xid = pkt.xid
        if xid not in outstanding:
            out["errors"].append(f"unknown xid {xid:#x}")  # RFC 6926 §7.3: close
            return
        mtype = option(pkt, "message-type")
        sid = option(pkt, "server_id")
        if sid is not None:
            first.setdefault(xid, sid)
        if mtype == 15:
            status = option(pkt, "status-code")
            out["done"].append({"xid": xid, "status": status[0] if status else 0})
            outstanding.discard(xid)
            if not outstanding:
                return
            continue
        if mtype not in (11, 13):
            out["errors"].append(f"unexpected message type {mtype}")
            continue
        state = option(pkt, "dhcp-state")
        out["replies"].append({
            "xid": xid,
            "type": DHCPTypes.get(mtype, str(mtype)),
            "ip": pkt.ciaddr,
            "state": STATES.get(state) if state is not None else ("ACTIVE" if mtype == 13 else None),
            "mac": pkt.chaddr[:pkt.hlen].hex(),
            "base_time": option(pkt, "base-time"),
            "start_time_of_state": option(pkt, "start-time-of-state"),
            "lease_time": option(pkt, "lease_time"),
            "cltt": option(pkt, "client-last-transaction-time"),
            "server_id": first.get(xid),
            "has_associated_ip": option(pkt, "associated-ip") is not None,
        })


if __name__ == "__main__":
    main()
