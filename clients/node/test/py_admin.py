"""Admin writes for the Node tests, by the reference implementation: one request per stdin line
({"ns", "method", "args", "kwargs"}), one JSON answer per stdout line ({"result"} or
{"error", "type"}). Any `guard.admin.Admin` method; "usage" included; "replace_config_doc"
replaces the namespace's config with a config document, as PUT /config does."""

from __future__ import annotations

import json
import sys

import guard
from guard.config_file import config_from_doc

url = sys.argv[1]
guards: dict[str, guard.Guard] = {}
for line in sys.stdin:
    req = json.loads(line)
    try:
        g = guards.get(req["ns"]) or guards.setdefault(
            req["ns"], guard.Guard.from_url(url, namespace=req["ns"], timeout=5.0)
        )
        if req["method"] == "replace_config_doc":
            g.admin.replace_config(config_from_doc(req["args"][0]))
            result = None
        else:
            result = getattr(g.admin, req["method"])(*req.get("args", []), **req.get("kwargs", {}))
        out = {"result": result}
    except Exception as exc:  # reported to the test, which fails on it
        out = {"error": str(exc), "type": type(exc).__name__}
    print(json.dumps(out, default=str), flush=True)
