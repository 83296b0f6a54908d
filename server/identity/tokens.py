"""Identity tokens in, a signed identity out.

In: the merchant's backend mints an HS256 JWT for a signed-in customer with the site's identity
secret (server/identity/site_secrets.py): `sub` (the customer id), `iat`, `exp`, optionally `aud`
(the site's name), `email_sha256` and `crm` (attributes). PyJWT verifies it; nothing here parses
or checks a signature by hand. Every refusal has a `code` and a sentence the SDK shows in its
debug log.

Out: a short-lived signed identity, `itsdangerous`'s URLSafeTimedSerializer over [customer key,
visitor id], keyed by VITRINA_SECRET_KEY with a salt naming the site (so one site's identity never
verifies for another, and a visitor cannot pass another browser's identity off as its own).
`collect` batches carry it, and collect verifies it before counting customer-level events."""
import re
import time

import jwt
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

ALGORITHM = "HS256"
LEEWAY_S = 60  # clock skew between the merchant's servers and ours
MAX_LIFETIME_S = 7 * 86400  # exp - iat: a token is minted per page or per session, not per year
MAX_TOKEN_LENGTH = 8192
IDENTITY_MAX_AGE_S = 24 * 3600
CUSTOMER_ID_RE = re.compile(r"^[^\x00-\x1f\x7f/]{1,128}\Z")
EMAIL_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}\Z")


class TokenRefused(Exception):
    """The token is refused; `code` names why (the API's detail code), the message says it."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class IdentityInvalid(Exception):
    """A signed identity that does not verify for this site and visitor, or has expired."""


def customer_id_problem(customer_id):
    if not isinstance(customer_id, str) or not CUSTOMER_ID_RE.match(customer_id):
        return "must be 1 to 128 characters, without control characters or /"
    return None


def verify_token(site, token, secrets):
    """The claims of a valid token: {"sub", "email_sha256" (or None), "crm" (dict), ...}, or
    TokenRefused. `secrets`: the site's valid identity secrets, newest first."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused("malformed", f"the token must be a JWT of at most {MAX_TOKEN_LENGTH} characters")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused("malformed", "the token is not a JWT (header.payload.signature)") from None
    if header.get("alg") != ALGORITHM:
        raise TokenRefused("algorithm", f"the token's algorithm is {header.get('alg')!r}; only {ALGORITHM} is accepted")
    if not secrets:
        raise TokenRefused("no_secret", "this site has no identity secret yet (vitrina sites identity-secret)")
    claims = _decode(token, secrets)
    aud = claims.get("aud")
    if aud is not None and site not in (aud if isinstance(aud, list) else [aud]):
        raise TokenRefused("audience", f"the token's audience is {aud!r}, not this site")
    if not isinstance(claims["iat"], (int, float)) or claims["exp"] - claims["iat"] > MAX_LIFETIME_S:
        raise TokenRefused("lifetime", f"the token lives longer than {MAX_LIFETIME_S // 86400} days (exp - iat)")
    problem = customer_id_problem(claims["sub"])
    if problem:
        raise TokenRefused("subject", f"the token's sub {problem}")
    email = claims.get("email_sha256")
    if email is not None and not (isinstance(email, str) and EMAIL_SHA256_RE.match(email)):
        raise TokenRefused("claims", "the token's email_sha256 must be 64 hex digits")
    if not isinstance(claims.get("crm", {}), dict):
        raise TokenRefused("claims", "the token's crm claim must be an object of attributes")
    return claims


def _decode(token, secrets):
    options = {"require": ["sub", "iat", "exp"], "verify_aud": False}
    for secret in secrets:
        try:
            return jwt.decode(token, secret, algorithms=[ALGORITHM], options=options, leeway=LEEWAY_S)
        except jwt.InvalidSignatureError:
            continue  # the previous secret, during a rotation
        except jwt.ExpiredSignatureError:
            raise TokenRefused("expired", "the token has expired (exp)") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefused("not_yet_valid", "the token is not valid yet (iat or nbf in the future)") from None
        except jwt.MissingRequiredClaimError as e:
            raise TokenRefused("claims", f"the token has no {e.claim} claim") from None
        except jwt.PyJWTError as e:
            raise TokenRefused("claims", f"the token's claims are invalid ({e})") from None
    raise TokenRefused("signature", "the token's signature does not verify with this site's identity secret "
                       "(a token for another site, or signed with an old secret)")


def _serializer(site):
    keys = current_app.config["VITRINA_SECRET_KEYS"]
    # itsdangerous signs with the last key and verifies with all: the first of ours signs
    return URLSafeTimedSerializer(list(reversed(keys)), salt=f"vitrina.identity|{site}")


def issue_identity(site, customer_key, visitor_id):
    """(signed identity, expires_at in ms since 1970)."""
    return _serializer(site).dumps([customer_key, visitor_id]), int((time.time() + IDENTITY_MAX_AGE_S) * 1000)


def read_identity(site, signed, visitor_id):
    """The customer key a signed identity names for this visitor, or IdentityInvalid."""
    try:
        customer_key, owner = _serializer(site).loads(signed, max_age=IDENTITY_MAX_AGE_S)
    except SignatureExpired:
        raise IdentityInvalid("the identity has expired: identify again") from None
    except (BadSignature, ValueError, TypeError):
        raise IdentityInvalid("the identity does not verify for this site") from None
    if owner != visitor_id:
        raise IdentityInvalid("the identity was issued to another visitor id")
    return customer_key
