"""Teacher API keys encrypted at rest with the server secret: `cryptography`'s Fernet (AES-CBC + HMAC).

The secret is `AICD_SECRET_KEY` (a Fernet key; several, comma-separated, to rotate: the first encrypts, any
decrypts). When it is unset, a key is generated once into `<AICD_HOME>/secret.key` (mode 0600) and reused, so
embedded mode needs no setup and keys are never stored in plain text. Processes on other hosts (cluster
workers) must share the secret: set AICD_SECRET_KEY there.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from backend.core.settings import Settings, get_settings

KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    """The server secret is malformed, or a stored value was encrypted with another secret."""


def key_file(settings: Settings) -> Path:
    return (settings.home / KEY_FILE).resolve()


def _generated_key(path: Path) -> bytes:
    """The key in `path`, created 0600 on first use; concurrent first uses agree on one key (atomic link)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
            os.link(tmp, path)  # fails if another process was first: then its key is the key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_bytes().strip()


@lru_cache(maxsize=8)
def _cipher(secret: str | None, path: Path) -> MultiFernet:
    raw = [k.strip().encode() for k in secret.split(",") if k.strip()] if secret else [_generated_key(path)]
    try:
        return MultiFernet([Fernet(k) for k in raw])
    except ValueError:
        raise SecretKeyError(
            "AICD_SECRET_KEY must be a Fernet key (32 url-safe base64-encoded bytes), e.g. the output of "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        ) from None


def cipher(settings: Settings | None = None) -> MultiFernet:
    settings = settings or get_settings()
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    return _cipher(secret, key_file(settings))


def encrypt(plain: str) -> str:
    return cipher().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            "a stored teacher key cannot be decrypted: it was encrypted with another AICD_SECRET_KEY "
            "(set the same secret on the API and every worker, or store the key again)"
        ) from None
