"""The outgoing key's endorsement of a key rotation (`key.rotated`).

The rotation entry is signed by the new key, which proves only that whoever
wrote it holds the new key. The endorsement is the retired key's signature
over the rotation's facts, so a verifier holding only the first published
keys can follow the chain of custody from key to key, entry by entry.

    message = b"vouchers/key-endorsement/v1\\n" + RFC 8785 bytes of
              {"region", "retired_key_id", "key_id", "note_key", "valid_from"}
    data.endorsement = {"key_id": <retired key id>, "alg": "ed25519", "value": base64(signature)}
"""
from __future__ import annotations

import base64
import binascii

from .canonical import canonical_bytes
from .entry import SIGNATURE_ALG
from .signing import verify_detached

DOMAIN = b"vouchers/key-endorsement/v1\n"
FIELDS = ("region", "retired_key_id", "key_id", "note_key", "valid_from")


def endorsement_message(region: str, data: dict) -> bytes:
    facts = {"region": region, **{name: data[name] for name in FIELDS if name != "region"}}
    return DOMAIN + canonical_bytes(facts)


def endorse(region: str, data: dict, retired_key_id: str, sign) -> dict:
    """`data.endorsement` for a rotation's data; `sign(bytes) -> 64 bytes` is the retired key's."""
    signature = sign(endorsement_message(region, data))
    return {"key_id": retired_key_id, "alg": SIGNATURE_ALG, "value": base64.b64encode(signature).decode("ascii")}


def check_endorsement(region: str, data: dict, retired_public_key_raw: bytes) -> bool:
    """Whether `data.endorsement` is the retired key's valid signature on the rotation."""
    endorsement = data.get("endorsement")
    if not isinstance(endorsement, dict) or endorsement.get("alg") != SIGNATURE_ALG:
        return False
    if endorsement.get("key_id") != data.get("retired_key_id") or not isinstance(endorsement.get("value"), str):
        return False
    if any(not isinstance(data.get(name), str) for name in FIELDS if name != "region"):
        return False
    try:
        signature = base64.b64decode(endorsement["value"], validate=True)
    except (ValueError, binascii.Error):
        return False
    return len(signature) == 64 and verify_detached(signature, endorsement_message(region, data),
                                                    retired_public_key_raw)
