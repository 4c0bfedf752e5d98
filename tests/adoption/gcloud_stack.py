"""The Cloud KMS half of the public guide (the Cloud Run path), made with Google's own client
as `gcloud kms keyrings create`, `gcloud kms keys create --purpose asymmetric-signing
--default-algorithm ec-sign-secp256k1-sha256 --protection-level hsm` and `gcloud kms keys
add-iam-policy-binding --role roles/cloudkms.signerVerifier` make it, and read back with the
same client for before/after comparisons.

    gcloud_stack.py build ENDPOINT      -> JSON: the key's name
    gcloud_stack.py snapshot ENDPOINT KEY -> JSON: ring, key (without labels), versions, IAM policy

It never calls keyrite.
"""

import json
import sys

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import kms_v1
from google.iam.v1 import policy_pb2
from google.protobuf import json_format

PROJECT, LOCATION = "wallet-prod-2026", "us-east1"
SIGNER = "serviceAccount:kms-signer@wallet-prod-2026.iam.gserviceaccount.com"


def client(endpoint):
    return kms_v1.KeyManagementServiceClient(
        credentials=AnonymousCredentials(), transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
    )


def build(endpoint):
    kms = client(endpoint)
    parent = f"projects/{PROJECT}/locations/{LOCATION}"
    ring = kms.create_key_ring(request={"parent": parent, "key_ring_id": "crossmint", "key_ring": {}})
    key = kms.create_crypto_key(
        request={
            "parent": ring.name,
            "crypto_key_id": "wallet-signer",
            "crypto_key": {
                "purpose": kms_v1.CryptoKey.CryptoKeyPurpose.ASYMMETRIC_SIGN,
                "version_template": {
                    "algorithm": kms_v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm.EC_SIGN_SECP256K1_SHA256,
                    "protection_level": kms_v1.ProtectionLevel.HSM,
                },
                "labels": {"team": "wallets"},
            },
        }
    )
    policy = kms.get_iam_policy(request={"resource": key.name})
    policy.bindings.append(policy_pb2.Binding(role="roles/cloudkms.signerVerifier", members=[SIGNER]))
    kms.set_iam_policy(request={"resource": key.name, "policy": policy})
    return {"key": key.name, "ring": ring.name}


def snapshot(endpoint, key_name):
    kms = client(endpoint)
    ring_name = key_name.split("/cryptoKeys/")[0]
    key = kms_v1.CryptoKey.to_dict(kms.get_crypto_key(request={"name": key_name}))
    key.pop("labels", None)
    versions = [
        kms_v1.CryptoKeyVersion.to_dict(v) for v in kms.list_crypto_key_versions(request={"parent": key_name})
    ]
    public = kms.get_public_key(request={"name": f"{key_name}/cryptoKeyVersions/1"})
    policy = json_format.MessageToDict(kms.get_iam_policy(request={"resource": key_name}))
    return {
        "ring": kms_v1.KeyRing.to_dict(kms.get_key_ring(request={"name": ring_name})),
        "key": key,
        "versions": versions,
        "public_key_pem": public.pem,
        "iam_policy": policy,
    }


def main():
    command, endpoint = sys.argv[1], sys.argv[2]
    result = build(endpoint) if command == "build" else snapshot(endpoint, sys.argv[3])
    json.dump(result, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
