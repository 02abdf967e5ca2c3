"""Land one synthetic batch into the active profile's landing zone on object storage (the kind/minikube demo).

Runs in a pod of the Spark image (k8s/kind-up.sh, k8s/minikube.sh): ``spark_jobs.generate`` writes the batch to a
temporary local landing zone, then boto3 uploads it under the profile's ``storage.landing`` (an s3a:// URI on
the chart's S3 store), where the ingest job of fraud_pipeline reads it. Arguments after the script are passed to the generator,
e.g. ``--rows 5000 --batch-id kind-demo``. Needs S3_ENDPOINT and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import boto3

from spark_jobs import generate
from tributary.config import load_profile


def main(argv: list[str]) -> int:
    landing = urlparse(load_profile().raw["storage"]["landing"])  # the active profile (TRIBUTARY_PROFILE)
    s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
    with tempfile.TemporaryDirectory() as home:
        os.environ["TRIBUTARY_HOME"] = home
        generate.main(["--profile", "local", *argv])
        local = Path(home) / "var" / "landing"
        for path in sorted(local.rglob("*.jsonl")):
            key = f"{landing.path.strip('/')}/{path.relative_to(local).as_posix()}"
            s3.upload_file(str(path), landing.netloc, key)
            print(f"landed s3://{landing.netloc}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
