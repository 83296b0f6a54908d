"""Bundles are canonical JSON signed with itsdangerous; the first secret key signs, all verify."""
import hashlib
import json

from itsdangerous import BadSignature, Signer

SALT = "vitrina.bundle"
REVISION_SALT = "vitrina.revision"  # a revision's signature never passes for a bundle's, nor the reverse


class SignatureInvalid(Exception):
    pass


_SCRIPT_ESCAPES = {ord("<"): "\\u003c", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def script_json(obj):
    """JSON safe to embed in a script: no '</script>', no raw line separators."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).translate(_SCRIPT_ESCAPES)


def _signer(keys, salt):
    # itsdangerous signs with the LAST key of the list and verifies with all of them.
    return Signer(list(reversed(keys)), salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)


def sign(payload, keys, salt=SALT):
    """Signature (text) of the canonical payload string."""
    signed = _signer(keys, salt).sign(payload.encode())
    return signed.rsplit(b".", 1)[1].decode()


def verify(payload, signature, keys, salt=SALT):
    """The payload string if the signature verifies with any key, else SignatureInvalid."""
    try:
        _signer(keys, salt).unsign(payload.encode() + b"." + signature.encode())
    except BadSignature:
        raise SignatureInvalid("bundle signature does not verify") from None
    return payload
