"""The signer stacks of the public AWS guide, built with boto3 the way a person following it
would (console defaults included), and read back with boto3 for before/after comparisons.

    guide_stack.py build ENDPOINT NODE_MODULES HANDLER_DIR   -> JSON: the ids it made
    guide_stack.py snapshot ENDPOINT IDS_JSON                 -> JSON: everything but tags

Two keys, as the guide leaves them:
- the wallet key, with the console's default key policy (the account root gets kms:*) plus
  the key-users statement for the signer role, and two aliases; its role `kms-signer-role`
  has the guide's inline policy `kms.policy` and the AWS managed AWSLambdaBasicExecutionRole;
  its function `kms-signer-function` (code written in the console, deployed as a zip) has a
  Function URL with auth NONE and only `lambda:InvokeFunctionUrl` granted to everyone (what
  the console wrote before October 2025), and a REST API `KMS Sign API` with POST on the root
  resource, AWS_IAM auth, the guide's resource policy, the console's Lambda permission and a
  `prod` stage without throttling;
- a second key with no alias, whose function has an AWS_IAM Function URL.

This is the test's own independent view of the stack: it never calls keyrite.
"""

import io
import json
import os
import sys
import zipfile

import boto3

REGION = "us-east-1"
NODE_PACKAGES = ("@aws-sdk", "@aws-crypto", "@aws", "@smithy", "@noble", "tslib", "bowser", "fast-xml-parser", "strnum")


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def zip_dir(root, prefix, names):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(os.listdir(root)):
            if not any(name == n or name.startswith(n + "-") for n in names):
                continue
            for base, _dirs, files in os.walk(os.path.join(root, name)):
                for f in sorted(files):
                    path = os.path.join(base, f)
                    z.write(path, os.path.join(prefix, os.path.relpath(path, root)))
    return buf.getvalue()


def handler_zip(handler_dir):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(handler_dir, "index.mjs"), "index.mjs")
    return buf.getvalue()


def console_key_policy(account, users):
    statements = [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if users:
        statements.append(
            {
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": users},
                "Action": ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"],
                "Resource": "*",
            }
        )
    return json.dumps({"Version": "2012-10-17", "Id": "key-consolepolicy-3", "Statement": statements})


LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def role(iam, name, key_arn):
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    sign = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["kms:Sign", "kms:GetPublicKey"], "Resource": key_arn}],
    }
    iam.put_role_policy(RoleName=name, PolicyName="kms.policy", PolicyDocument=json.dumps(sign))
    iam.attach_role_policy(RoleName=name, PolicyArn=BASIC_EXECUTION)
    return arn


def build(endpoint, node_modules, handler_dir):
    kms, iam, lam, gw = (client(s, endpoint) for s in ("kms", "iam", "lambda", "apigateway"))
    account = client("sts", endpoint).get_caller_identity()["Account"]
    made = {"account": account}

    def key():
        meta = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY", Description="")["KeyMetadata"]
        return meta["KeyId"], meta["Arn"]

    wallet_id, wallet_arn = key()
    kms.create_alias(AliasName="alias/my-crossmint-wallet-key", TargetKeyId=wallet_id)
    kms.create_alias(AliasName="alias/treasury-hot", TargetKeyId=wallet_id)
    spare_id, spare_arn = key()
    made["keys"] = [wallet_id, spare_id]

    wallet_role = role(iam, "kms-signer-role", wallet_arn)
    spare_role = role(iam, "kms-signer-role-iam", spare_arn)
    made["roles"] = ["kms-signer-role", "kms-signer-role-iam"]
    # The key users the console's "Define key usage permissions" step adds.
    kms.put_key_policy(KeyId=wallet_id, PolicyName="default", Policy=console_key_policy(account, [wallet_role]))
    kms.put_key_policy(KeyId=spare_id, PolicyName="default", Policy=console_key_policy(account, []))

    # On AWS the Node.js runtime carries the SDK; the emulator is given the real one (and the
    # handler's curve library) as a layer.
    layer = lam.publish_layer_version(
        LayerName="guide-node-modules",
        Content={"ZipFile": zip_dir(node_modules, "nodejs/node_modules", NODE_PACKAGES)},
        CompatibleRuntimes=["nodejs20.x"],
    )["LayerVersionArn"]
    code = handler_zip(handler_dir)
    functions = []
    for name, role_arn, key_id in [
        ("kms-signer-function", wallet_role, wallet_id),
        ("kms-signer-function-iam", spare_role, spare_id),
    ]:
        lam.create_function(
            FunctionName=name,
            Runtime="nodejs20.x",
            Handler="index.handler",
            Role=role_arn,
            Code={"ZipFile": code},
            Environment={"Variables": {"KMS_KEY_ID": key_id}},
            Layers=[layer],
            Timeout=10,
        )
        functions.append(name)
    # The console shows the function as Pending until Lambda has made it; the guide goes on
    # once it is Active, as boto3's waiter does.
    for name in functions:
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    made["functions"] = functions
    lam.create_function_url_config(FunctionName="kms-signer-function", AuthType="NONE")
    lam.add_permission(
        FunctionName="kms-signer-function",
        StatementId="FunctionURLAllowPublicAccess",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
    )
    lam.create_function_url_config(FunctionName="kms-signer-function-iam", AuthType="AWS_IAM")

    # Advanced: a REST API with IAM auth. "Create method" on the root resource, POST, Lambda
    # proxy integration; the console adds the Lambda permission itself.
    api = gw.create_rest_api(name="KMS Sign API", endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = next(r["id"] for r in gw.get_resources(restApiId=api)["items"] if r["path"] == "/")
    function_arn = f"arn:aws:lambda:{REGION}:{account}:function:kms-signer-function"
    gw.put_method(restApiId=api, resourceId=root, httpMethod="POST", authorizationType="AWS_IAM")
    gw.put_integration(
        restApiId=api,
        resourceId=root,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
    )
    lam.add_permission(
        FunctionName="kms-signer-function",
        StatementId="c3b5e1f0-4e7d-4c2a-9f59-0a1d8e2b7c41",
        Action="lambda:InvokeFunction",
        Principal="apigateway.amazonaws.com",
        SourceArn=f"arn:aws:execute-api:{REGION}:{account}:{api}/*/POST/",
    )
    gw.create_deployment(restApiId=api, stageName="prod")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowAnyoneInThisAccount",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "execute-api:Invoke",
                "Resource": f"arn:aws:execute-api:{REGION}:{account}:{api}/*/POST/",
                "Condition": {"StringEquals": {"aws:PrincipalAccount": account}},
            }
        ],
    }
    gw.update_rest_api(
        restApiId=api, patchOperations=[{"op": "replace", "path": "/policy", "value": json.dumps(policy)}]
    )
    # "re-deploy the API to the stage for the changes to take effect"
    gw.create_deployment(restApiId=api, stageName="prod")
    made["apis"] = [api]
    return made


def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys and k != "ResponseMetadata"}


def snapshot(endpoint, made):
    kms, iam, lam, gw = (client(s, endpoint) for s in ("kms", "iam", "lambda", "apigateway"))
    out = {"keys": {}, "aliases": [], "roles": {}, "functions": {}, "apis": {}}
    for key_id in made["keys"]:
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        out["keys"][key_id] = {
            "metadata": {k: str(v) for k, v in meta.items()},
            "policy": json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]),
            "public_key": kms.get_public_key(KeyId=key_id)["PublicKey"].hex(),
        }
    out["keys_in_account"] = sorted(k["KeyId"] for k in kms.list_keys()["Keys"])
    out["aliases"] = sorted(
        (a["AliasName"], a.get("TargetKeyId")) for a in kms.list_aliases()["Aliases"] if "TargetKeyId" in a
    )
    for name in made["roles"]:
        r = iam.get_role(RoleName=name)["Role"]
        inline = {
            p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
        }
        attached = sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"])
        out["roles"][name] = {
            "role": {k: str(v) for k, v in without(r, "Tags", "RoleLastUsed").items()},
            "inline": inline,
            "attached": attached,
        }
    for name in made["functions"]:
        config = lam.get_function_configuration(FunctionName=name)
        try:
            policy = lam.get_policy(FunctionName=name)
            statements = sorted(json.loads(policy["Policy"])["Statement"], key=lambda s: s.get("Sid", ""))
            policy = {"statements": statements, "revision": policy.get("RevisionId")}
        except lam.exceptions.ResourceNotFoundException:
            policy = None
        url = without(lam.get_function_url_config(FunctionName=name))
        out["functions"][name] = {
            "configuration": {k: v for k, v in without(config).items()},
            "policy": policy,
            "url": {k: str(v) for k, v in url.items()},
        }
    for api in made["apis"]:
        rest = without(gw.get_rest_api(restApiId=api), "tags")
        resources = []
        for r in gw.get_resources(restApiId=api)["items"]:
            methods = {}
            for m in sorted(r.get("resourceMethods", {})):
                method = without(gw.get_method(restApiId=api, resourceId=r["id"], httpMethod=m), "methodIntegration")
                integration = without(gw.get_integration(restApiId=api, resourceId=r["id"], httpMethod=m))
                methods[m] = {"method": method, "integration": integration}
            resources.append({"id": r["id"], "path": r["path"], "methods": methods})
        stages = [
            {k: str(v) for k, v in without(s, "tags").items()} for s in gw.get_stages(restApiId=api)["item"]
        ]
        deployments = sorted(d["id"] for d in gw.get_deployments(restApiId=api)["items"])
        out["apis"][api] = {
            "api": {k: str(v) for k, v in rest.items()},
            "resources": sorted(resources, key=lambda r: r["path"]),
            "stages": sorted(stages, key=lambda s: s["stageName"]),
            "deployments": deployments,
        }
    return out


def main():
    command, endpoint = sys.argv[1], sys.argv[2]
    if command == "build":
        result = build(endpoint, sys.argv[3], sys.argv[4])
    elif command == "snapshot":
        result = snapshot(endpoint, json.loads(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {command}")
    json.dump(result, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
