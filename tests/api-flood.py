#!/usr/bin/env python3
"""api-flood.py - hold many connections to surplusd open, as a hostile
client would, for the daemon-api tests and the follower benchmark.

  api-flood.py follow SOCKET TOKEN JOB N READY   N followers of JOB's log
  api-flood.py get SOCKET TOKEN PATH N READY     N GETs of PATH, never read
  api-flood.py idle SOCKET N READY               N connections, no request
  api-flood.py tcp HOST PORT N READY             N bare TCP connects

Each opens its connections, writes to READY one line per outcome of the
first response line it saw ("200", "429", "closed", "open" when nothing
came within a second), then holds everything open until killed.
"""
import collections
import os
import selectors
import signal
import socket
import sys
import time


def connect_unix(path, wait=3.0):
    """Connects, retrying while the listener's backlog is full (a Unix
    socket says EAGAIN then) for up to `wait` seconds."""
    end = time.monotonic() + wait
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
            s.setblocking(True)
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.01)


def first_status(socks, wait=1.0):
    """The status code each socket got first, or 'open' / 'closed'."""
    got = {s: b"" for s in socks}
    done = {}
    sel = selectors.DefaultSelector()  # epoll: fds past 1024 are fine
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    end = time.monotonic() + wait
    while len(done) < len(socks) and time.monotonic() < end:
        for key, _ in sel.select(0.1):
            s = key.fileobj
            try:
                b = s.recv(4096)
            except OSError:
                b = b""
            if b:
                got[s] += b
            if not b or b"\r\n" in got[s]:
                done[s] = got[s].split()[1].decode() if got[s] else "closed"
                sel.unregister(s)
    sel.close()
    return [done.get(s, "open") for s in socks]


def report(ready, outcomes):
    with open(ready + ".new", "w") as f:
        for k, v in sorted(collections.Counter(outcomes).items()):
            f.write("%s %d\n" % (k, v))
    os.rename(ready + ".new", ready)  # whole, for whoever waits on it


def main():
    mode = sys.argv[1]
    socks, outcomes = [], []
    if mode in ("follow", "get"):
        path, token, what, n, ready = sys.argv[2:7]
        if mode == "follow":
            what = "/v1/jobs/%s/log?follow=1" % what
        req = ("GET %s HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (what, token)).encode()
        for _ in range(int(n)):
            try:
                s = connect_unix(path)
                s.sendall(req)
                socks.append(s)
            except OSError:
                outcomes.append("refused")
        outcomes += first_status(socks, float(sys.argv[7]) if len(sys.argv) > 7 else 5.0)
    elif mode == "idle":
        path, n, ready = sys.argv[2:5]
        for _ in range(int(n)):
            try:
                socks.append(connect_unix(path))
            except OSError as e:
                outcomes.append("refused")
        outcomes += first_status(socks)
    elif mode == "tcp":
        host, port, n, ready = sys.argv[2:6]
        for _ in range(int(n)):
            try:
                socks.append(socket.create_connection((host, int(port)), 5))
            except OSError:
                outcomes.append("refused")
        outcomes += first_status(socks)
    else:
        sys.exit("unknown mode " + mode)
    report(ready, outcomes)
    signal.pause()


main()
