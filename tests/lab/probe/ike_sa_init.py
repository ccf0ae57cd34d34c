#!/usr/bin/env python3
"""Sends IKE_SA_INIT requests (RFC 7296 section 1.2) from a spoofed peer
address: AES-CBC-128 / HMAC-SHA-256 / PRF-SHA-256 with DH group 1
(modp768), which xgw never accepts, so each is a `dh_group_mismatch`.

usage: ike_sa_init.py SRC_ADDR DST_ADDR COUNT
Each request has a fresh SPIi, so the responder sees COUNT new initiators.
Source port 5500: the real peer's IKE daemon holds 500 on that address.
"""
import os
import socket
import struct
import sys


def payload(next_type, body):
    return struct.pack("!BBH", next_type, 0, 4 + len(body)) + body


def transform(last, ttype, tid, attrs=b""):
    body = struct.pack("!BxH", ttype, tid) + attrs
    return struct.pack("!BxH", 0 if last else 3, 4 + len(body)) + body


def request():
    ts = (transform(False, 1, 12, struct.pack("!HH", 0x800E, 128))  # ENCR_AES_CBC 128
          + transform(False, 2, 5)    # PRF_HMAC_SHA2_256
          + transform(False, 3, 12)   # AUTH_HMAC_SHA2_256_128
          + transform(True, 4, 1))    # D-H group 1
    prop = struct.pack("!BxHBBBB", 0, 8 + len(ts), 1, 1, 0, 4) + ts
    sa = payload(34, prop)                                   # next: KE
    ke = payload(40, struct.pack("!HH", 1, 0) + os.urandom(96))  # next: Nonce
    nonce = payload(0, os.urandom(32))
    body = sa + ke + nonce
    hdr = os.urandom(8) + bytes(8) + struct.pack("!BBBBII", 33, 0x20, 34, 0x08, 0, 28 + len(body))
    return hdr + body


def main():
    src, dst, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 5500))
    for _ in range(count):
        s.sendto(request(), (dst, 500))


if __name__ == "__main__":
    main()
