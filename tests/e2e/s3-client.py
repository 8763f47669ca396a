#!/usr/bin/env python3
"""s3-client.py - an S3 client other than dm (boto3), for the e2e tests.

usage: s3-client.py ENDPOINT COMMAND ARGS...
  user                     (on a moto_server whose first 3 requests need no
                           authentication) make an IAM user allowed
                           everything and print its key id and secret
  mb BUCKET [--versioned]  make a bucket
  put BUCKET KEY FILE      upload FILE as KEY
  ls BUCKET                print KEY SIZE per object, sorted
  cat BUCKET KEY           write the object to stdout
  rm BUCKET KEY            delete KEY

The key id and secret of the other commands come from $AWS_ACCESS_KEY_ID
and $AWS_SECRET_ACCESS_KEY.
"""
import json
import sys

import boto3

ALLOW_ALL = {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def client(endpoint, service, **kw):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **kw)


def main():
    endpoint, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "user":
        iam = client(endpoint, "iam", aws_access_key_id="setup",
                     aws_secret_access_key="setup")
        iam.create_user(UserName="dm-tests")
        iam.put_user_policy(UserName="dm-tests", PolicyName="all",
                            PolicyDocument=json.dumps(ALLOW_ALL))
        key = iam.create_access_key(UserName="dm-tests")["AccessKey"]
        print(key["AccessKeyId"], key["SecretAccessKey"])
        return
    s3 = client(endpoint, "s3")
    if cmd == "mb":
        s3.create_bucket(Bucket=args[0])
        if args[1:] == ["--versioned"]:
            s3.put_bucket_versioning(Bucket=args[0],
                                     VersioningConfiguration={"Status": "Enabled"})
    elif cmd == "put":
        s3.upload_file(args[2], args[0], args[1])
    elif cmd == "ls":
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=args[0])
        for page in pages:
            for o in page.get("Contents", []):
                print(o["Key"], o["Size"])
    elif cmd == "cat":
        sys.stdout.buffer.write(s3.get_object(Bucket=args[0], Key=args[1])["Body"].read())
    elif cmd == "rm":
        s3.delete_object(Bucket=args[0], Key=args[1])
    else:
        sys.exit("s3-client.py: unknown command " + cmd)


main()
