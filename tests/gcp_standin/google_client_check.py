"""Drives keyrite's Cloud KMS stand-in with Google's own client library, over REST.

If Google's client cannot talk to the stand-in, the stand-in is wrong: every call here is
made by `google-cloud-kms` (transport="rest"), every checksum by `google-crc32c`, and the
signature is verified by `cryptography`, none of it written for keyrite.

Usage: python google_client_check.py http://127.0.0.1:<port>
Prints one line per check and exits non-zero on the first failure.
"""

import hashlib
import os
import sys
import time

import google_crc32c
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import kms_v1
from google.iam.v1 import iam_policy_pb2, policy_pb2

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


def check(what: str, ok: bool, detail: str = "") -> None:
    print(("ok   " if ok else "FAIL ") + what + (f": {detail}" if detail else ""), flush=True)
    if not ok:
        sys.exit(1)


def expect_error(what: str, kind, call) -> None:
    try:
        call()
    except kind as e:
        check(what, True, type(e).__name__)
        return
    except exceptions.GoogleAPICallError as e:
        check(what, False, f"expected {kind.__name__}, got {type(e).__name__}: {e}")
    check(what, False, f"expected {kind.__name__}, got success")


def main() -> None:
    endpoint = sys.argv[1]
    client = kms_v1.KeyManagementServiceClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options=ClientOptions(api_endpoint=endpoint),
    )
    location = "projects/conformance/locations/us-east1"
    ring_id = "ring-" + os.urandom(4).hex()

    ring = client.create_key_ring(request={"parent": location, "key_ring_id": ring_id, "key_ring": {}})
    check("create_key_ring returns its name", ring.name == f"{location}/keyRings/{ring_id}", ring.name)
    check("key ring has a create time", ring.create_time.year >= 2024, str(ring.create_time))
    expect_error(
        "a duplicate key ring is refused",
        exceptions.Conflict,
        lambda: client.create_key_ring(request={"parent": location, "key_ring_id": ring_id, "key_ring": {}}),
    )
    expect_error("an unknown key ring is NotFound", exceptions.NotFound, lambda: client.get_key_ring(name=ring.name + "x"))
    check("get_key_ring", client.get_key_ring(name=ring.name).name == ring.name)

    key = client.create_crypto_key(
        request={
            "parent": ring.name,
            "crypto_key_id": "signer",
            "crypto_key": {
                "purpose": kms_v1.CryptoKey.CryptoKeyPurpose.ASYMMETRIC_SIGN,
                "version_template": {
                    "algorithm": kms_v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm.EC_SIGN_SECP256K1_SHA256,
                    "protection_level": kms_v1.ProtectionLevel.HSM,
                },
                "labels": {"team": "treasury"},
            },
        }
    )
    check("create_crypto_key: purpose", key.purpose == kms_v1.CryptoKey.CryptoKeyPurpose.ASYMMETRIC_SIGN)
    check(
        "create_crypto_key: algorithm",
        key.version_template.algorithm == kms_v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm.EC_SIGN_SECP256K1_SHA256,
    )
    check("create_crypto_key: protection level", key.version_template.protection_level == kms_v1.ProtectionLevel.HSM)
    check("create_crypto_key: labels", dict(key.labels) == {"team": "treasury"}, str(dict(key.labels)))
    check("destroy window defaults to 30 days", key.destroy_scheduled_duration.days == 30, str(key.destroy_scheduled_duration))

    version_name = f"{key.name}/cryptoKeyVersions/1"
    state = kms_v1.CryptoKeyVersion.CryptoKeyVersionState
    v = client.get_crypto_key_version(name=version_name)
    check("version 1 starts in PENDING_GENERATION", v.state == state.PENDING_GENERATION, v.state.name)
    expect_error(
        "a pending version has no public key yet",
        exceptions.BadRequest,  # FAILED_PRECONDITION travels as HTTP 400
        lambda: client.get_public_key(request={"name": version_name}),
    )
    deadline = time.time() + 10
    while v.state != state.ENABLED and time.time() < deadline:
        time.sleep(0.1)
        v = client.get_crypto_key_version(name=version_name)
    check("version 1 becomes ENABLED", v.state == state.ENABLED, v.state.name)

    public = client.get_public_key(request={"name": version_name})
    check("public key: PEM checksum", public.pem_crc32c == crc32c(public.pem.encode()), str(public.pem_crc32c))
    check("public key: names the version", public.name == version_name, public.name)
    pub = serialization.load_pem_public_key(public.pem.encode())
    check("public key is secp256k1", isinstance(pub.curve, ec.SECP256K1), pub.curve.name)

    high_s = 0
    for i in range(32):
        digest = hashlib.sha256(b"keyrite conformance %d" % i).digest()
        signed = client.asymmetric_sign(
            request={"name": version_name, "digest": {"sha256": digest}, "digest_crc32c": crc32c(digest)}
        )
        if i == 0:
            check("sign: verified_digest_crc32c", signed.verified_digest_crc32c)
            check("sign: signature checksum", signed.signature_crc32c == crc32c(signed.signature))
            check("sign: names the version", signed.name == version_name, signed.name)
        pub.verify(signed.signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        _, s = utils.decode_dss_signature(signed.signature)
        high_s += s > SECP256K1_N // 2
    check("32 signatures verify with cryptography", True)
    check("signatures are not all low-s (an HSM does not normalise)", 0 < high_s < 32, f"{high_s}/32 high-s")

    unchecked = client.asymmetric_sign(request={"name": version_name, "digest": {"sha256": bytes(32)}})
    check("sign without a digest checksum: not verified", not unchecked.verified_digest_crc32c)
    expect_error(
        "a wrong digest checksum is refused",
        exceptions.BadRequest,
        lambda: client.asymmetric_sign(
            request={"name": version_name, "digest": {"sha256": bytes(32)}, "digest_crc32c": 12345}
        ),
    )
    expect_error(
        "a short digest is refused",
        exceptions.BadRequest,
        lambda: client.asymmetric_sign(request={"name": version_name, "digest": {"sha256": bytes(20)}}),
    )

    client.create_crypto_key_version(request={"parent": key.name, "crypto_key_version": {}})
    versions = list(client.list_crypto_key_versions(request={"parent": key.name, "page_size": 1}))
    check("list_crypto_key_versions pages through both", [x.name.rsplit("/", 1)[1] for x in versions] == ["1", "2"])
    keys = list(client.list_crypto_keys(request={"parent": ring.name}))
    check("list_crypto_keys", [k.name for k in keys] == [key.name])
    rings = [r.name for r in client.list_key_rings(request={"parent": location, "page_size": 1})]
    check("list_key_rings finds the ring", ring.name in rings)

    updated = client.update_crypto_key(
        request={"crypto_key": {"name": key.name, "labels": {"team": "ops"}}, "update_mask": {"paths": ["labels"]}}
    )
    check("update_crypto_key: labels", dict(updated.labels) == {"team": "ops"}, str(dict(updated.labels)))

    disabled = client.update_crypto_key_version(
        request={"crypto_key_version": {"name": version_name, "state": state.DISABLED}, "update_mask": {"paths": ["state"]}}
    )
    check("disable a version", disabled.state == state.DISABLED, disabled.state.name)
    expect_error(
        "a disabled version does not sign",
        exceptions.BadRequest,  # FAILED_PRECONDITION travels as HTTP 400
        lambda: client.asymmetric_sign(request={"name": version_name, "digest": {"sha256": bytes(32)}}),
    )
    destroyed = client.destroy_crypto_key_version(request={"name": version_name})
    check("destroy schedules", destroyed.state == state.DESTROY_SCHEDULED, destroyed.state.name)
    window = destroyed.destroy_time.timestamp() - time.time()
    check("destroy time is 30 days out", 29 * 86400 < window <= 30 * 86400, f"{window:.0f}s")
    restored = client.restore_crypto_key_version(request={"name": version_name})
    check("restore leaves it DISABLED", restored.state == state.DISABLED, restored.state.name)

    policy = client.get_iam_policy(request={"resource": key.name})
    check("a new key has no bindings", len(policy.bindings) == 0)
    policy.bindings.append(
        policy_pb2.Binding(role="roles/cloudkms.signerVerifier", members=["serviceAccount:signer@p.iam.gserviceaccount.com"])
    )
    written = client.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=key.name, policy=policy))
    check("set_iam_policy changes the etag", written.etag != policy.etag)
    read = client.get_iam_policy(request={"resource": key.name})
    check(
        "get_iam_policy returns the binding",
        [(b.role, list(b.members)) for b in read.bindings]
        == [("roles/cloudkms.signerVerifier", ["serviceAccount:signer@p.iam.gserviceaccount.com"])],
    )
    expect_error(
        "a stale etag is refused",
        exceptions.Conflict,
        lambda: client.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=key.name, policy=policy)),
    )
    asked = ["cloudkms.cryptoKeys.get", "cloudkms.cryptoKeyVersions.useToSign"]
    tested = client.test_iam_permissions(request=iam_policy_pb2.TestIamPermissionsRequest(resource=key.name, permissions=asked))
    check("test_iam_permissions answers with the held permissions", sorted(tested.permissions) == sorted(asked), str(tested.permissions))
    ring_test = client.test_iam_permissions(
        request=iam_policy_pb2.TestIamPermissionsRequest(resource=ring.name, permissions=["cloudkms.cryptoKeys.create"])
    )
    check("test_iam_permissions works on a key ring", list(ring_test.permissions) == ["cloudkms.cryptoKeys.create"])
    expect_error(
        "test_iam_permissions on a missing key is NOT_FOUND",
        exceptions.NotFound,
        lambda: client.test_iam_permissions(
            request=iam_policy_pb2.TestIamPermissionsRequest(resource=key.name + "-missing", permissions=asked)
        ),
    )
    print("google-cloud-kms (REST) agrees with the stand-in")


if __name__ == "__main__":
    main()
