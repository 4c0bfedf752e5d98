"""Verifies a DSSE envelope with PyPI securesystemslib (1.6.0), as a third-party verifier would.

usage: ssl_verify.py ENVELOPE.json KEYS.json THRESHOLD
KEYS.json maps keyid -> securesystemslib key dict ({"keytype", "scheme", "keyval": {"public"}}).
Prints the accepted keyids as a sorted JSON list and exits 0, or prints the error and exits 1.
"""
import json
import sys

import securesystemslib
from securesystemslib.dsse import Envelope
from securesystemslib.signer import Key


def main() -> int:
    envelope_path, keys_path, threshold = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(envelope_path) as f:
        envelope = Envelope.from_dict(json.load(f))
    with open(keys_path) as f:
        keys = [Key.from_dict(keyid, dict(d)) for keyid, d in json.load(f).items()]
    try:
        accepted = envelope.verify(keys, threshold)
    except Exception as e:  # VerificationError, ValueError: report, do not hide
        print(f"securesystemslib {securesystemslib.__version__}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(sorted(accepted)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
