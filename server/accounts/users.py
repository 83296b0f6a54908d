"""Workspace users: an email, an argon2 password hash, a role per site.

Roles are ordered, each including the one before: `viewer` reads, `editor` also edits the config
(settings included), publishes and rolls back, `owner` also manages users and API keys.

A one-time link (`/app/set-password/<token>`) lets a user set a password: the token is signed
(itsdangerous, the server's secret keys), expires after LINK_MAX_AGE_S, and carries a stamp of
the password hash it was made under, so setting a password spends it, and every other link made
before (no table of used tokens: Django's password-reset tokens work the same way)."""
import hashlib
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from server.store import UserExists, get_store

ROLES = ("viewer", "editor", "owner")
EMAIL_RE = re.compile(r"^[^@\s{}<>\"'\\,;:()\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+\Z")
MAX_EMAIL = 254
MIN_PASSWORD, MAX_PASSWORD = 10, 1000
LINK_MAX_AGE_S = 3 * 86_400
LINK_SALT = "vitrina.set-password"
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


class LinkInvalid(Exception):
    """The link is forged, expired, or already used; the message says which for a person."""


def normal_email(raw):
    """The email in the form it is stored (trimmed, lowercase), or None when it is not one."""
    if not isinstance(raw, str):
        return None
    email = raw.strip().lower()
    return email if len(email) <= MAX_EMAIL and EMAIL_RE.match(email) else None


def role_allows(role, needed):
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def password_problem(password):
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        return f"must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"must be at most {MAX_PASSWORD} characters"
    return None


def set_password(email, password):
    get_store().set_password(email, _HASHER.hash(password))


def check_password(user, password):
    """Whether `password` is the user's; rehashes it when the library's parameters moved on."""
    if user is None or not user.password_hash or not isinstance(password, str) or len(password) > MAX_PASSWORD:
        _HASHER.hash("burn the same time as a real check")  # no timing difference for unknown emails
        return False
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return True


def ensure_user(email):
    """Create the user unless they exist; returns whether they were created."""
    try:
        get_store().create_user(email)
    except UserExists:
        return False
    return True


def _serializer():
    keys = current_app.config["VITRINA_SECRET_KEYS"]
    return URLSafeTimedSerializer(list(reversed(keys)), salt=LINK_SALT)  # the last signs: keys[0]


def _stamp(user):
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def link_token(email):
    user = get_store().get_user(email)
    return _serializer().dumps({"email": email, "stamp": _stamp(user)})


def link_path(email):
    return f"/app/set-password/{link_token(email)}"


def link_url(email):
    """The one-time set-password link: absolute when VITRINA_PUBLIC_URL is set, else a path."""
    return (current_app.config.get("VITRINA_PUBLIC_URL") or "") + link_path(email)


def user_of_link(token):
    """The User a valid, unspent link is for, else LinkInvalid."""
    try:
        data = _serializer().loads(token, max_age=LINK_MAX_AGE_S)
    except SignatureExpired:
        raise LinkInvalid("This link has expired: ask a site owner for a new one.") from None
    except BadSignature:
        raise LinkInvalid("This link is not valid.") from None
    user = get_store().get_user(data.get("email")) if isinstance(data, dict) else None
    if user is None or data.get("stamp") != _stamp(user):
        raise LinkInvalid("This link has been used already: sign in, or ask a site owner for a new one.")
    return user


def may_reset(issuer_roles, target_roles):
    """An owner may issue a password link to a user only when every site of that user is one the
    owner owns: a link sets the password of the whole account."""
    return all(issuer_roles.get(site) == "owner" for site in target_roles)
