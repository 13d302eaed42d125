"""Tokens for the `docker compose up` demo, generated on first start: no default secret ships.

Standard library only (runs in a plain python image). Writes into DIR (a named volume):
``admin.token`` and ``client.token`` (random, mode 0600, kept across restarts) and
``tokens.yaml``, the ``GUARD_TOKENS_FILE`` guard reads, holding only their SHA-256. Read the
admin token with ``docker compose run --rm tokens cat /run/guard-tokens/admin.token``.

    python make_tokens.py DIR
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path


def ensure(path: Path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def main(directory: str) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    lines = ["tokens:"]
    for role in ("admin", "client"):
        digest = hashlib.sha256(ensure(d / f"{role}.token").encode()).hexdigest()
        lines += [f"  - name: demo-{role}", f"    role: {role}", f"    sha256: {digest}"]
    tmp = d / "tokens.yaml.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o644)  # digests only; guard runs as an unprivileged user
    tmp.replace(d / "tokens.yaml")
    print(f"guard demo tokens in {d} (admin: docker compose run --rm tokens cat {d}/admin.token)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/run/guard-tokens")
