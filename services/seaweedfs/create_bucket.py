"""Create the bucket on a starting SeaweedFS, retried: a fresh server answers InternalError for a few seconds.

    python create_bucket.py <endpoint> <bucket> <identities file>

The keys are the identities file's first credential (the one the stack writes); they are never printed.
"""

import json
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

DEADLINE_S = 120


def main(endpoint: str, bucket: str, identities: str) -> None:
    with open(identities) as handle:
        credential = json.load(handle)["identities"][0]["credentials"][0]
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=credential["accessKey"], aws_secret_access_key=credential["secretKey"])
    deadline, problem = time.monotonic() + DEADLINE_S, ""
    while time.monotonic() < deadline:
        try:
            client.create_bucket(Bucket=bucket)
            print(f"seaweedfs: created the bucket {bucket}")
            return
        except client.exceptions.BucketAlreadyOwnedByYou:
            print(f"seaweedfs: the bucket {bucket} is there")
            return
        except (BotoCoreError, ClientError) as exc:  # not up yet, or InternalError while it settles
            problem = str(exc)
            time.sleep(1)
    sys.exit(f"seaweedfs: could not create the bucket {bucket} within {DEADLINE_S} s: {problem}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
