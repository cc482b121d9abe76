"""The HTTP API's test client (tests/integration/test_api*.py): every
answer goes through tests/openapi.py's Validator, so it must be what
api/openapi.json describes."""
import json
import os

import openapi
from harness import relance

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "api", "openapi.json")
V = openapi.Validator(DOC)


class Api:
    """A client with one key: every answer validated against the document."""

    def __init__(self, base, key):
        self.base, self.key = base, key

    def call(self, method, path, body=None, headers=None, key=True, judged=True):
        """judged=False only for a path the document cannot describe (an
        unknown one): its answer is checked by the test alone."""
        h = dict(headers or {})
        if key and self.key:
            h.setdefault("Authorization", "Bearer " + self.key)
        judge = V if judged else type("Nobody", (), {"check": lambda *a: None})()
        status, hdrs, raw = openapi.validated_request(judge, self.base, method, path, body=body, headers=h)
        ctype = hdrs.get("Content-Type") or ""
        data = json.loads(raw) if raw and "json" in ctype else raw
        return status, hdrs, data, raw


def new_key(env, name, scopes="*"):
    """A new API key (relance api-keys create), as printed."""
    r = relance("api-keys", "create", name, "--scopes", scopes, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def config(directory, rate, burst):
    """A configuration file setting the API's rate limit."""
    path = os.path.join(directory, f"relance-{rate}.yaml")
    with open(path, "w") as f:
        f.write(f"http:\n  api_rate_limit: {rate}\n  api_rate_burst: {burst}\n")
    return path


def problem(check, got, status, slug, what):
    """Checks that got (Api.call's answer) is the problem slug with status."""
    st, hdrs, body, _ = got
    check.eq(st, status, f"{what}: status")
    check.ok(isinstance(body, dict) and body.get("type") == f"urn:relance:problem:{slug}", f"{what}: problem {slug}",
             body)
    check.ok(isinstance(body, dict) and body.get("request_id") == hdrs.get("X-Request-Id"),
             f"{what}: the problem's request_id is the X-Request-Id header", body)
