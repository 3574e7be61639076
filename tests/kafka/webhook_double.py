#!/usr/bin/python3
"""Test double for outside webhook receivers (Slack, PagerDuty, generic JSON
endpoints), used by tests/kafka/test_alert.c. It is not a product component.

Listens on 127.0.0.1, prints the chosen port on stdout (one line), and
appends every POST it receives to a JSONL file as
{"path": ..., "headers": {...}, "body": "...", "status": N}. It can be told to
answer the first N requests with 500 (--fail-first N) and, after those, one
request with 429 and a Retry-After header (--retry-after-once SECONDS), and
to always answer one path with a fixed status (--status-for /PATH=CODE).
Failed attempts are recorded too, with their status. Standard library only.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--retry-after-once", type=int, default=-1)
    ap.add_argument("--status-for", action="append", default=[])
    args = ap.parse_args()
    fixed = {}
    for spec in args.status_for:
        path, code = spec.split("=", 1)
        fixed[path] = int(code)
    lock = threading.Lock()
    state = {"n": 0, "retry_after_sent": False}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n).decode("utf-8", "replace")
            with lock:
                state["n"] += 1
                status, extra = 200, {}
                if self.path in fixed:
                    status = fixed[self.path]
                elif state["n"] <= args.fail_first:
                    status = 500
                elif args.retry_after_once >= 0 and not state["retry_after_sent"]:
                    state["retry_after_sent"] = True
                    status, extra = 429, {"Retry-After": str(args.retry_after_once)}
                with open(args.out, "a") as f:
                    f.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                        "body": body, "status": status}) + "\n")
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
