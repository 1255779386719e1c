"""Request PREFIX1 .. PREFIXN once each over one keep-alive connection.

Usage: warm.py PORT PREFIX N SIZE
Exits non-zero, naming the first bad key, unless every answer is a 200
carrying exactly SIZE body bytes.
"""
import http.client
import sys


def main():
    port, prefix, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    for i in range(1, count + 1):
        path = f"{prefix}{i}"
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or len(body) != size:
            sys.exit(f"warm-up: {path} answered {resp.status} with {len(body)} bytes (want 200, {size})")
        if resp.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)


if __name__ == "__main__":
    main()
