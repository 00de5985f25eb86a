#!/usr/bin/env python3
"""lose-answer.py - a relay in front of surplusd that loses one answer, as
a daemon killed between committing a job and sending its 201 would.

  lose-answer.py LISTEN UPSTREAM LOG

Listens on the Unix socket LISTEN and relays each connection to the Unix
socket UPSTREAM.  On the first connection, the request goes through, and
so does an interim "100 Continue", but once the final answer starts the
client's connection is closed without a byte of it; the answer's status
line is appended to LOG ("lost: HTTP/1.1 201 Created").  Every later
connection is relayed as is.  "ready" is appended to LOG once listening.
Runs until killed.
"""
import os
import socket
import sys
import threading


def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")


def pipe(src, dst):
    """Copies src to dst until src ends, then ends dst's writing side."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def lose(client, upstream, logfile):
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    buf = b""
    while True:
        data = upstream.recv(65536)
        if not data:
            break
        buf += data
        # Interim answers (1xx) are whole once their blank line is in.
        while buf.startswith(b"HTTP/1.1 1") and b"\r\n\r\n" in buf:
            end = buf.index(b"\r\n\r\n") + 4
            client.sendall(buf[:end])
            buf = buf[end:]
        if len(buf) >= 12 and not buf.startswith(b"HTTP/1.1 1"):
            break
    log(logfile, "lost: " + buf.split(b"\r\n")[0].decode("ascii", "replace"))
    # shutdown, not just close: the other thread's recv holds the socket.
    for s in (client, upstream):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def relay(client, upstream):
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)
    client.close()
    upstream.close()


def main():
    listen, upstream_path, logfile = sys.argv[1:4]
    try:
        os.unlink(listen)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listen)
    srv.listen(16)
    log(logfile, "ready")
    first = True
    while True:
        client, _ = srv.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(upstream_path)
        target = lose if first else relay
        args = (client, upstream, logfile) if first else (client, upstream)
        first = False
        threading.Thread(target=target, args=args, daemon=True).start()


if __name__ == "__main__":
    main()
