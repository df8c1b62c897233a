#!/usr/bin/env python3
"""New and returning visitors: time to first byte over a fresh TCP connection and TLS handshake.

    visit.py ADDR HOST PATH CA_FILE PAIRS PAUSE_S
    visit.py connect ADDR N


Makes PAIRS pairs of visits to https://HOST/PATH, connecting to ADDR (IP:PORT) and
verifying the server against CA_FILE. In each pair, first a new visitor: a new TCP connection
and a full TLS handshake (no session); then, PAUSE_S seconds later, the same visitor returning:
a new TCP connection again, offering the TLS session (TLS 1.2 session ticket or ID, TLS 1.3
ticket) the first visit got. Visits are PAUSE_S seconds apart, so a proxy has time to restore
what a visit used (a warm connection).

Each visit sends one HTTP/1.1 GET (with `Connection: close` and a browser's Accept-Encoding),
reads the whole answer and prints one line:

    kind=new connect_ms=.. tls_ms=.. ttfb_ms=.. total_ms=.. status=200 version=TLSv1.3 reused=0 bytes=..

All times run from just before connect(): connect_ms when TCP is established (to the local
proxy: near zero), tls_ms when the handshake is done, ttfb_ms when the first byte of the
answer arrives, total_ms when the server has closed. `reused` is OpenSSL's own word on whether
the server accepted the offered session (SSLSocket.session_reused): a returning visit with
reused=0 was a full handshake and is reported as such. TLS 1.3 tickets arrive after the
handshake; the session is taken once the whole answer has been read, when they are in.
A visit that fails prints `kind=... error=...` and the script goes on.

`connect` opens N TCP connections to ADDR one after the other and prints `connect_ms=..` for
each: across the link, one round trip (the benchmark's check of the link).
"""

import socket
import ssl
import sys
import time


def visit(addr: str, host: str, path: str, ctx: ssl.SSLContext, session, kind: str):
    """One visit: its line, and the TLS session to offer next time (or None)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ferry-bench-wan\r\n"
               "Accept: */*\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: close\r\n\r\n")
    start = time.perf_counter()
    ms = lambda: (time.perf_counter() - start) * 1e3  # noqa: E731
    try:
        ip, _, port = addr.rpartition(":")
        raw = socket.create_connection((ip, int(port)), timeout=60)
        connect = ms()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = ctx.wrap_socket(raw, server_hostname=host, session=session,
                              do_handshake_on_connect=False)
        with tls:
            tls.do_handshake()
            handshake = ms()
            tls.sendall(request.encode())
            first = tls.recv(65536)
            ttfb = ms()
            data = bytearray(first)
            while chunk := tls.recv(65536):
                data += chunk
            total = ms()
            status = data[9:12].decode(errors="replace") if data.startswith(b"HTTP/") else "?"
            line = (f"kind={kind} connect_ms={connect:.2f} tls_ms={handshake:.2f} "
                    f"ttfb_ms={ttfb:.2f} total_ms={total:.2f} status={status} "
                    f"version={tls.version()} reused={int(tls.session_reused)} bytes={len(data)}")
            return line, tls.session
    except (OSError, ssl.SSLError) as err:
        return f"kind={kind} error={type(err).__name__}:{str(err).replace(' ', '_')[:120]}", None


def connect(addr: str, n: int) -> None:
    ip, _, port = addr.rpartition(":")
    for _ in range(n):
        start = time.perf_counter()
        with socket.create_connection((ip, int(port)), timeout=10):
            print(f"connect_ms={(time.perf_counter() - start) * 1e3:.2f}", flush=True)


def main() -> None:
    if sys.argv[1] == "connect":
        connect(sys.argv[2], int(sys.argv[3]))
        return
    addr, host, path, ca, pairs, pause = sys.argv[1:7]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    for i in range(int(pairs)):
        if i:
            time.sleep(float(pause))
        line, session = visit(addr, host, path, ctx, None, "new")
        print(line, flush=True)
        time.sleep(float(pause))
        if session is None:
            print("kind=return error=no_session_from_the_first_visit", flush=True)
            continue
        line, _ = visit(addr, host, path, ctx, session, "return")
        print(line, flush=True)


if __name__ == "__main__":
    main()
