"""Holds N idle keep-alive connections to a cache: each sends one GET for a
1 KiB hit, reads the whole response, then stays open and silent. Writes
"ready" to READY_FILE once all are idle, and keeps them until killed.

Usage: idle.py PORT PATH N READY_FILE
"""
import socket
import sys
import time


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk


def main():
    port, path, n, ready = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench.local\r\n\r\n".encode())
        read_response(s)
        held.append(s)
    with open(ready, "w") as f:
        f.write("ready\n")
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(1)


main()
