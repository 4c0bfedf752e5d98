"""Reads a recovery key's policy and its gate's role back with boto3, and prints who may sign.

Usage: recovery_policy.py ENDPOINT KEY_ID ROLE_NAME
Prints {"signers": [principals of Allow statements granting kms:Sign], "gate_role": ARN}.
"""
import json
import sys

import boto3

endpoint, key_id, role_name = sys.argv[1:4]
args = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
kms = boto3.client("kms", **args)
iam = boto3.client("iam", **args)
policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])


def listed(value):
    return value if isinstance(value, list) else [value]


signers = []
for statement in listed(policy["Statement"]):
    if statement.get("Effect") != "Allow":
        continue
    actions = [a.lower() for a in listed(statement.get("Action", []))]
    if not any(a in ("kms:sign", "kms:*", "*") for a in actions):
        continue
    principal = statement.get("Principal", {})
    if principal == "*":
        signers.append("*")
    else:
        signers.extend(listed(principal.get("AWS", [])))
print(json.dumps({"signers": sorted(signers), "gate_role": iam.get_role(RoleName=role_name)["Role"]["Arn"]}))
