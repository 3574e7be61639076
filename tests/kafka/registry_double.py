#!/usr/bin/python3
"""A test double for an outside service: the Confluent Schema Registry.

It is not burstguard code and not a registry: it serves just the part of the
Confluent REST API the worker uses, faithfully enough to test the client
(worker/registry.c) and the worker against it:

  GET /schemas/ids/{id}  -> 200 {"schema": "<the text of DIR/{id}.avsc>"}
                            404 {"error_code": 40403, "message": "Schema {id} not found"}
                            (Content-Type application/vnd.schemaregistry.v1+json)
  GET /__requests        -> 200 {"requests": N}: /schemas/ids/ requests served so far
                            (the double's own endpoint, for cache tests)

Behaviour flags, to play an unhealthy registry:
  --fail-first N   answer 500 {"error_code": 50001, ...} to the first N schema requests
  --slow S         sleep S seconds before answering each schema request
  --auth USER:PW   require HTTP basic auth (401 {"error_code": 401, ...} otherwise)
  --port P         listen on 127.0.0.1:P (0, the default, picks a free port)

On start it prints "PORT <port>" as its first line on stdout, then serves until
SIGTERM. Standard library only; run it with Debian's /usr/bin/python3.
"""
import argparse
import base64
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CT = "application/vnd.schemaregistry.v1+json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="directory of {id}.avsc files")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--auth", default=None, help="USER:PASSWORD required via basic auth")
    a = ap.parse_args()

    lock = threading.Lock()
    state = {"requests": 0}
    want_auth = ("Basic " + base64.b64encode(a.auth.encode()).decode()) if a.auth else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: the tests read stdout
            pass

        def answer(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", CT)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/__requests":
                with lock:
                    n = state["requests"]
                return self.answer(200, {"requests": n})
            m = re.fullmatch(r"/schemas/ids/(-?[0-9]+)", self.path)
            if not m:
                return self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
            with lock:
                state["requests"] += 1
                n = state["requests"]
            if a.slow > 0:
                threading.Event().wait(a.slow)
            if want_auth and self.headers.get("Authorization") != want_auth:
                return self.answer(401, {"error_code": 401, "message": "Unauthorized"})
            if n <= a.fail_first:
                return self.answer(500, {"error_code": 50001, "message": "Error in the backend data store"})
            sid = int(m.group(1))
            path = os.path.join(a.dir, "%d.avsc" % sid)
            if sid < 0 or not os.path.isfile(path):
                return self.answer(404, {"error_code": 40403, "message": "Schema %d not found" % sid})
            with open(path, encoding="utf-8") as f:
                text = f.read()
            return self.answer(200, {"schema": text})

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
