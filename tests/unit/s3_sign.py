#!/usr/bin/env python3
"""s3_sign.py - botocore's SigV4 for one S3 request, to compare with dm's.

usage: s3_sign.py KEY_ID SECRET REGION METHOD TARGET AMZ_DATE [NAME:VALUE...]

TARGET is the request's path and query as sent; NAME:VALUE are the headers
the request signed other than x-amz-date (host among them). A request whose
x-amz-content-sha256 is UNSIGNED-PAYLOAD is signed as botocore signs one
for a client configured with s3={"payload_signing_enabled": False}; any
other as one with an empty body, hashed. Prints the Authorization header
botocore computes, then its x-amz-content-sha256.
"""
import sys

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials


def main():
    key_id, secret, region, method, target, amz_date = sys.argv[1:7]
    headers = {}
    for h in sys.argv[7:]:
        name, value = h.split(":", 1)
        headers[name] = value
    unsigned = headers.get("x-amz-content-sha256") == "UNSIGNED-PAYLOAD"
    headers.pop("x-amz-content-sha256", None)
    req = AWSRequest(method=method, url="http://%s%s" % (headers["host"], target),
                     headers=headers, data=b"")
    req.context["client_config"] = Config(s3={"payload_signing_enabled": not unsigned})
    auth = S3SigV4Auth(Credentials(key_id, secret), "s3", region)
    # add_auth's steps, with the request's own time instead of now
    req.context["timestamp"] = amz_date
    auth._modify_request_before_signing(req)
    canonical = auth.canonical_request(req)
    signature = auth.signature(auth.string_to_sign(req, canonical), req)
    signed = auth.signed_headers(auth.headers_to_sign(req))
    print("AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s"
          % (auth.scope(req), signed, signature))
    print(req.headers["X-Amz-Content-SHA256"])


main()
