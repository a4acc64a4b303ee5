#!/usr/bin/env python3
"""The Python baseline for bench/run.sh: SimpleXMLRPCServer with ThreadingMixIn serving add(x, y).

Stock apart from two things: request logging is off (it would write a line to stderr per
request), and the listen backlog is 128 instead of 5, so 32 concurrent clients are queued
rather than refused (with 5 the server drops connections and its p99 passes a second; see
../shared/MEASURED.md). Both make Python faster, never slower. HTTP/1.0 as stock: one
connection per request.

Usage: xmlrpc_server.py PORT  (listens on 127.0.0.1; prints "listening on 127.0.0.1:PORT").
"""

import socketserver
import sys
from xmlrpc.server import SimpleXMLRPCServer


class ThreadingXMLRPCServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    request_queue_size = 128


def add(x, y):
    return x + y


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7880
    server = ThreadingXMLRPCServer(("127.0.0.1", port), logRequests=False, allow_none=True)
    server.register_function(add, "add")
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
