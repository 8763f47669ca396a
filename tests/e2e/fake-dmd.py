#!/usr/bin/env python3
"""fake-dmd.py - a stand-in for dmd's /rpc, to test the dm client alone.

usage: fake-dmd.py (--port N | --socket PATH) --dir DIR

It answers POST /rpc from DIR/replies.json, read again on every request:
{"METHOD": REPLY, ...} where REPLY is one of
  {"result": ANY}                         a JSON-RPC result
  {"error": {"code":..,"message":..,...}} a JSON-RPC error object
  {"http": STATUS, "body": "TEXT"}        a raw HTTP answer
  {"big": BYTES}                          a result padded to BYTES bytes
  {"bad_id": true, "result": ANY}         a result with another request id
A method with no entry gets -32601 "method not found". Every request is
appended to DIR/requests.jsonl as {"auth": HEADER, "path": PATH, "body": BODY}.
DIR/ready appears once it listens. It stops on SIGTERM.
"""
import argparse
import http.server
import json
import os
import socketserver
import sys


def make_handler(d):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def address_string(self):
            return "fake"

        def send(self, status, body, ctype="application/json"):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(n).decode("utf-8", "replace")
            with open(os.path.join(d, "requests.jsonl"), "a") as f:
                f.write(json.dumps({"auth": self.headers.get("Authorization"),
                                    "path": self.path, "body": raw}) + "\n")
            try:
                req = json.loads(raw)
            except ValueError:
                req = {}
            try:
                with open(os.path.join(d, "replies.json")) as f:
                    replies = json.load(f)
            except (OSError, ValueError):
                replies = {}
            reply = replies.get(req.get("method"))
            rid = req.get("id")
            if reply is None:
                out = {"jsonrpc": "2.0", "id": rid,
                       "error": {"code": -32601, "message": "method not found"}}
            elif "http" in reply:
                self.send(reply["http"], reply.get("body", ""), "text/plain")
                return
            elif "big" in reply:
                out = {"jsonrpc": "2.0", "id": rid, "result": {"pad": "x" * reply["big"]}}
            elif "error" in reply:
                out = {"jsonrpc": "2.0", "id": rid, "error": reply["error"]}
            else:
                if reply.get("bad_id"):
                    rid = (rid or 0) + 1000
                out = {"jsonrpc": "2.0", "id": rid, "result": reply.get("result")}
            self.send(200, json.dumps(out))

    return Handler


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("fake", 0)


class TCPHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--socket")
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    handler = make_handler(a.dir)
    if a.socket:
        if os.path.exists(a.socket):
            os.unlink(a.socket)
        srv = UnixHTTPServer(a.socket, handler)
    else:
        srv = TCPHTTPServer(("127.0.0.1", a.port), handler)
    with open(os.path.join(a.dir, "ready"), "w") as f:
        f.write(str(os.getpid()) + "\n")
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        srv.serve_forever()
    finally:
        if a.socket and os.path.exists(a.socket):
            os.unlink(a.socket)


if __name__ == "__main__":
    main()
