"""Tenant API key material: generation, the key id, the hash that is all the platform stores, and the
per-tenant usage identifier. Pure functions, no I/O (models.py: the key's metadata; repository.py:
its items; service.py: create, list, revoke, authenticate).

A key looks like `bk_test_3f9a0c1d2e4b5a69_<43 url-safe chars>`: the `bk_live_`/`bk_test_` prefix makes
a leaked key greppable (secret scanners, logs) and tells production keys from the rest; the 16 hex
characters after it are the key id, visible without the secret; the tail is `secrets.token_urlsafe(32)`,
256 bits from the OS CSPRNG.

Only `sha256(key)` is stored (item `APIKEY#<hash>`/`KEY`). A fast, unsalted hash is the right tool here:
slow salted hashes (bcrypt, scrypt, argon2) exist to make guessing low-entropy *passwords* expensive;
guessing a 256-bit random value is infeasible at any hash speed, so a slow hash would only add its deliberate
cost to every authorizer call and make the key impossible to look up by its hash in one GetItem. A stolen
table therefore yields no usable key.

A second item `APIKEYID#<key id>`/`KEY` maps the key id to its hash so revocation by id is one
strongly consistent read (the `gsi1` listing index is eventually consistent).
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_ID_PREFIX = "key_"
_KEY_PATTERN = re.compile(r"^bk_(live|test)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def hash_key(presented: str) -> str:
    """SHA-256 hex digest of the full key string: the only form in which a key is stored."""
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The key id of a well-formed key (`key_<16 hex>`), or None when the string is not a platform key."""
    match = _KEY_PATTERN.fullmatch(presented)
    return f"{KEY_ID_PREFIX}{match.group(2)}" if match else None


def generate_key(*, live: bool) -> tuple[str, str]:
    """A new (key id, full key). The full key is shown once and never stored."""
    id_part = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_ID_PREFIX}{id_part}", f"bk_{'live' if live else 'test'}_{id_part}_{secret}"


def usage_identifier_key(tenant_id: str) -> str:
    """The value the authorizer returns as `usageIdentifierKey`: it must equal the value of an API Gateway
    API key attached to the tenant's usage plan (apiKeySource AUTHORIZER). Deterministic per tenant, so
    throttling applies per tenant however many keys it mints; not a credential (clients cannot present
    it: with apiKeySource AUTHORIZER API Gateway ignores the x-api-key header)."""
    return "bk_usage_" + hashlib.sha256(f"usage-plan:{tenant_id}".encode()).hexdigest()[:40]
