"""`import guard` (and `import guard.aws`) must not pull boto3, Flask or a Lambda web framework
(Chalice, Powertools, Mangum, Starlette) into a Lambda cold start."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "boto3",
    "botocore",
    "flask",
    "werkzeug",
    "chalice",
    "aws_lambda_powertools",
    "mangum",
    "starlette",
    "fastapi",
)
CHECK = f"""
HEAVY = {HEAVY!r}
import json, sys
import {{module}}
print(json.dumps(sorted(m for m in sys.modules
                        if m.split('.')[0] in HEAVY)))
"""


def heavy_modules(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(out.stdout))


def test_import_guard_loads_neither_boto3_nor_flask() -> None:
    assert heavy_modules("guard") == []


def test_import_guard_aws_loads_neither_boto3_nor_flask() -> None:
    assert heavy_modules("guard.aws") == []
    assert heavy_modules("guard.aws.sync") == []  # boto3 comes with the first client only
    assert heavy_modules("guard.aws.asgi") == []  # plain ASGI: no framework needed
