"""Create the S3 buckets named in $BUCKETS on the S3-compatible endpoint $S3_ENDPOINT (the chart's S3 store on kind, minikube and the local cluster).

Run by the chart's post-install Job (helm/tributary templates/s3store) in the MLflow image. Idempotent: existing buckets are kept. Retries
until the store answers, for up to five minutes. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
    deadline = time.monotonic() + 300
    for bucket in os.environ["BUCKETS"].split():
        while True:
            try:
                s3.head_bucket(Bucket=bucket)
                print(f"bucket {bucket} exists")
                break
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                    s3.create_bucket(Bucket=bucket)
                    print(f"bucket {bucket} created")
                    break
                error = exc
            except BotoCoreError as exc:
                error = exc
            if time.monotonic() > deadline:
                print(f"error: the object store did not answer within 5 minutes: {error}", file=sys.stderr)
                return 1
            time.sleep(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
