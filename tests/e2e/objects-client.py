#!/usr/bin/env python3
"""objects-client.py - speaks a dmd's /objects endpoints directly, as a
hostile or curious user would, for the isolation tests (t0525).

usage: objects-client.py URL USER KEYFILE COMMAND [ARGS...]
  refs DOT                    prints the answer's JSON, then "session TOKEN"
  missing SESSION ID...       prints the ids the server says it lacks
  get SESSION DOT ID...       prints "object ID KIND SIZE" per record and
                              "error NAME MESSAGE" for an error record;
                              writes the records' bytes to get.bytes
  put SESSION DOT_ID FILE...  sends each FILE as a record (chunk, or the
                              kind its 'dm' header names); prints the answer
  file-object CHUNK_ID LEN    writes to stdout a file object naming one chunk
  commit-object DOT_ID COMMIT_ID PARENT TREE AUTHOR_HEX MESSAGE_HEX
                              writes to stdout a commit object (PARENT "-":
                              none; author and message given as hex bytes)
  update SESSION JSON         sends an update; prints the answer
SESSION "-" sends no session header. $DM_CA_FILE is the CA an https URL's
server must chain to (the server's ca.pem). Exit status 0 unless the HTTP
exchange itself failed; refusals are printed as "http STATUS BODY".
"""
import base64
import hashlib
import json
import os
import ssl
import struct
import sys
import urllib.error
import urllib.request

HEADER = "Dm-Transfer-Session"
REC = 44


def call(url, user, key, path, body=None, session=None):
    req = urllib.request.Request(url + path, data=body, method="POST" if body is not None else "GET")
    token = base64.b64encode(("%s:%s" % (user, key)).encode()).decode()
    req.add_header("Authorization", "Basic " + token)
    req.add_header("Content-Type", "application/octet-stream")
    if session and session != "-":
        req.add_header(HEADER, session)
    ctx = ssl.create_default_context(cafile=os.environ["DM_CA_FILE"]) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
            return r.status, r.read(), r.headers.get(HEADER)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get(HEADER)


def uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def main():
    url, user, keyfile, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    key = open(keyfile).read().strip()
    if cmd == "file-object":
        chunk, length = bytes.fromhex(args[0]), int(args[1])
        sys.stdout.buffer.write(b"dm\x02\x01" + uvarint(length) + uvarint(1) + uvarint(0) + uvarint(length) + chunk)
        return 0
    if cmd == "commit-object":
        dot_id, commit_id, parent, tree, author, message = args
        def field(b):
            return uvarint(len(b)) + b
        out = b"dm\x04\x01" + field(dot_id.encode()) + field(commit_id.encode())
        out += uvarint(0) if parent == "-" else uvarint(1) + field(parent.encode())
        out += bytes.fromhex(tree) + field(bytes.fromhex(author))
        out += uvarint(1700000000000000000 << 1)  # svarint time_ns (positive: zigzag)
        out += field(bytes.fromhex(message)) + uvarint(0)
        sys.stdout.buffer.write(out)
        return 0
    if cmd == "update":
        status, body, _ = call(url, user, key, "/objects/v1/update", args[1].encode(), args[0])
        print(body.decode(errors="replace") if status == 200 else "http %d %s" % (status, body.decode(errors="replace")))
        return 0
    if cmd == "refs":
        status, body, session = call(url, user, key, "/objects/v1/refs?dot=" + args[0] + "&for=push")
        print(body.decode(errors="replace") if status == 200 else "http %d %s" % (status, body.decode(errors="replace")))
        print("session %s" % (session or "-"))
        return 0
    if cmd == "missing":
        ids = b"".join(bytes.fromhex(i) for i in args[1:])
        status, body, _ = call(url, user, key, "/objects/v1/missing", ids, args[0])
        if status != 200:
            print("http %d %s" % (status, body.decode(errors="replace")))
            return 0
        for i in range(0, len(body), 32):
            print(body[i:i + 32].hex())
        return 0
    if cmd == "get":
        ids = b"".join(bytes.fromhex(i) for i in args[2:])
        status, body, _ = call(url, user, key, "/objects/v1/get?dot=" + args[1], ids, args[0])
        if status != 200:
            print("http %d %s" % (status, body.decode(errors="replace")))
            return 0
        open("get.bytes", "wb").write(body)
        pos = 0
        while pos + REC <= len(body):
            kind, flags, raw_len, stored_len = body[pos], body[pos + 1], *struct.unpack("<II", body[pos + 4:pos + 12])
            oid = body[pos + 12:pos + 44].hex()
            data = body[pos + REC:pos + REC + stored_len]
            if kind == 0:
                print("error %s" % data.decode(errors="replace"))
            else:
                print("object %s %d %d" % (oid, kind, raw_len))
            pos += REC + stored_len
        return 0
    if cmd == "put":
        session, dot_id, files = args[0], args[1], args[2:]
        stream = bytearray()
        for f in files:
            data = open(f, "rb").read()
            kind = data[2] if data[:2] == b"dm" and len(data) > 4 else 1
            stream += bytes([kind, 0, 0, 0]) + struct.pack("<II", len(data), len(data))
            stream += hashlib.sha256(data).digest() + data
        status, body, _ = call(url, user, key, "/objects/v1/put?dot_id=" + dot_id, bytes(stream), session)
        print(body.decode(errors="replace") if status == 200 else "http %d %s" % (status, body.decode(errors="replace")))
        return 0
    print("unknown command %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
