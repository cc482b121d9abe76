"""Third-party judges of relance's HTTP API document, api/openapi.json:

- lint(doc_path): Redocly CLI (npm's @redocly/cli, a pinned release of the
  1.34 line, which runs on Debian 12's Node.js 18) with its recommended
  ruleset (tests/redocly.yaml). npm installs it into a temporary folder
  once per process, never into the project.
- Validator(doc_path).check(method, path, status, headers, body): a
  response as relance sent it must be one the document describes: the
  operation (path template and method), the status, the Content-Type, the
  required headers and their values, and the body against its JSON
  Schema (Draft 2020-12, jsonschema's own validator, $refs resolved into
  the document). Anything undocumented or invalid is an AssertionError
  naming the request and what is wrong.
- validated_request(validator, base_url, method, path, ...): sends a
  request with urllib, checks the response, returns it; the way
  integration tests talk to the API, so every response they see is
  judged.

Standard library and Debian's python3-jsonschema only; node and npm
come from deploy/deps test."""
import json
import os
import re
import subprocess
import urllib.error
import urllib.request

import jsonschema

import npmtools

# Pinned exactly: a new release can bring new rules that fail the test for
# reasons of its own. 1.34.21 cannot be installed (it asks for a
# @redocly/respect-core 1.34.21 the registry does not have).
REDOCLY_VERSION = "1.34.20"
# Transitive packages pinned by npm overrides because their newest
# releases declare they need more than Debian 12's Node.js 18: jsep 1.6
# (reached through @redocly/respect-core's jsonpath-plus, which accepts
# ^1.4.0) asks for node >= 20.16. lint does not load it today, but a
# package outside its engines is one release away from breaking. (npm 9.2,
# Debian 12's, only warns that Redocly asks for npm >= 9.5: it installs.)
NPM_OVERRIDES = {"jsep": "1.4.0"}

HERE = os.path.dirname(os.path.abspath(__file__))
REDOCLY_CONFIG = os.path.join(HERE, "redocly.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

def redocly_install():
    """Installs Redocly CLI (once per process, tests/npmtools.py); returns
    the path of its cli.js. Raises RuntimeError with npm's output when
    that fails."""
    prefix = npmtools.install("@redocly/cli", REDOCLY_VERSION, NPM_OVERRIDES)
    return os.path.join(prefix, "node_modules", "@redocly", "cli", "bin", "cli.js")


def format_problems(problems):
    """Redocly's JSON problems as one readable line each: severity, rule,
    where in the document, message."""
    lines = []
    for p in problems:
        where = ", ".join(loc.get("pointer", "?") for loc in p.get("location", [])) or "?"
        lines.append(f"{p.get('severity', '?')} {p.get('ruleId', '?')} at {where}: {p.get('message', '')}")
    return "\n".join(lines)


class LintResult:
    """What the linter found: counts, the problems (Redocly's JSON) and the
    same as text, one problem a line."""

    def __init__(self, errors, warnings, problems):
        self.errors = errors
        self.warnings = warnings
        self.problems = problems
        self.text = format_problems(problems)

    def __repr__(self):
        return f"LintResult(errors={self.errors}, warnings={self.warnings})\n{self.text}"


def lint(doc_path, config=REDOCLY_CONFIG):
    """Lints the OpenAPI document at doc_path with Redocly CLI and the
    configuration `config`. Returns a LintResult when there is no error
    (warnings included in it); raises AssertionError listing every problem
    when there is one, or when the linter itself fails."""
    cli = redocly_install()
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
               NO_COLOR="1", FORCE_COLOR="0")
    r = subprocess.run(["node", cli, "lint", "--config", config, "--format", "json", doc_path],
                       capture_output=True, text=True, timeout=300, env=env, cwd=os.path.dirname(cli))
    try:
        report = json.loads(r.stdout)
        totals = report["totals"]
    except (ValueError, KeyError, TypeError):
        raise AssertionError(f"redocly lint {doc_path} gave no report (exit {r.returncode}):\n"
                             f"{r.stdout[-2000:]}{r.stderr[-2000:]}") from None
    res = LintResult(totals["errors"], totals["warnings"], report.get("problems", []))
    if res.errors or r.returncode != 0:
        raise AssertionError(f"redocly lint {doc_path}: {res.errors} errors, {res.warnings} warnings "
                             f"(exit {r.returncode}):\n{res.text}")
    return res


# ---- response validation

def pointer_escape(token):
    return token.replace("~", "~0").replace("/", "~1")


def pointer_get(doc, pointer):
    """The node at a JSON Pointer ("#/a/b" or "/a/b") in doc; KeyError when
    there is none."""
    node = doc
    for token in pointer.lstrip("#").split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        else:
            node = node[token]
    return node


class Headers:
    """Case-insensitive view of response headers: a dict, a list of pairs
    or an http.client.HTTPMessage."""

    def __init__(self, headers):
        items = headers.items() if hasattr(headers, "items") else headers
        self.values = {}
        for k, v in items or ():
            self.values.setdefault(k.lower(), v)

    def get(self, name):
        return self.values.get(name.lower())


class Validator:
    """Judges responses against the OpenAPI 3.1 document at doc_path."""

    def __init__(self, doc_path):
        with open(doc_path, "rb") as f:
            self.doc = json.load(f)
        self.validators = {}
        self.templates = []
        for template, item in self.doc.get("paths", {}).items():
            parts = template.strip("/").split("/")
            regex = "/" + "/".join("[^/]+" if re.fullmatch(r"\{[^}]+\}", p) else re.escape(p) for p in parts)
            literal = sum(1 for p in parts if not p.startswith("{"))
            self.templates.append((template, re.compile(regex), literal, item))
        # OpenAPI: a concrete path is matched before a templated one
        # (/v1/contacts/bulk before /v1/contacts/{id}).
        self.templates.sort(key=lambda t: -t[2])

    def resolve(self, node, pointer):
        """Follows $ref chains from node (found at pointer); returns the
        object and its own pointer."""
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#") or ref in seen:
                raise AssertionError(f"unresolvable $ref {ref} at {pointer}")
            seen.add(ref)
            try:
                node = pointer_get(self.doc, ref)
            except (KeyError, IndexError, ValueError):
                raise AssertionError(f"$ref {ref} at {pointer} points at nothing") from None
            pointer = ref
        return node, pointer

    def schema_errors(self, pointer, instance):
        """jsonschema's errors for instance against the schema at pointer,
        best first. The root schema is the document itself with a $ref to
        that schema: every $ref inside resolves against the document, and
        the document's own members are keywords JSON Schema ignores."""
        v = self.validators.get(pointer)
        if v is None:
            root = dict(self.doc)
            root["$ref"] = pointer
            v = self.validators[pointer] = jsonschema.Draft202012Validator(root)
        return sorted(v.iter_errors(instance), key=jsonschema.exceptions.relevance)

    def operation(self, method, path):
        """(template, pointer of the operation, operation) for a request, or
        (template, None, None) when the path is documented but not with
        this method; AssertionError when the path is not documented."""
        path = path.split("?", 1)[0].split("#", 1)[0]
        method = method.lower()
        matched = [t for t in self.templates if t[1].fullmatch(path)]
        if not matched:
            raise AssertionError(f"{method.upper()} {path}: no path of the document matches")
        for template, _, _, item in matched:
            if method in item:
                return template, f"#/paths/{pointer_escape(template)}/{method}", item[method]
        return matched[0][0], None, None

    def response(self, method, path, status):
        """(pointer, response object) of the documented response."""
        template, op_ptr, op = self.operation(method, path)
        what = f"{method.upper()} {path} -> {status}"
        if op is None:
            # Any method a path does not list answers 405: the 405 response
            # its operations document.
            item = self.doc["paths"][template]
            for m in HTTP_METHODS:
                if m in item and "405" in item[m].get("responses", {}) and int(status) == 405:
                    ptr = f"#/paths/{pointer_escape(template)}/{m}/responses/405"
                    resp, ptr = self.resolve(item[m]["responses"]["405"], ptr)
                    return ptr, resp
            raise AssertionError(f"{what}: the document has no {method.upper()} on {template}")
        responses = op.get("responses", {})
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                resp, ptr = self.resolve(responses[key], f"{op_ptr}/responses/{key}")
                return ptr, resp
        raise AssertionError(f"{what}: status {status} is not documented for {method.upper()} {template} "
                             f"(documented: {', '.join(responses)})")

    def check(self, method, path, status, headers, body_bytes):
        """Raises AssertionError unless this response (status, headers, body
        bytes) is one the document allows for this request."""
        what = f"{method.upper()} {path.split('?', 1)[0]} -> {status}"
        resp_ptr, resp = self.response(method, path, status)
        hdrs = Headers(headers)

        for name, h in resp.get("headers", {}).items():
            h, h_ptr = self.resolve(h, f"{resp_ptr}/headers/{pointer_escape(name)}")
            value = hdrs.get(name)
            if value is None:
                if h.get("required"):
                    raise AssertionError(f"{what}: required header {name} is missing")
                continue
            schema = self.resolve(h.get("schema", {}), f"{h_ptr}/schema")[0]
            instance = value
            if schema.get("type") == "integer":
                if not re.fullmatch(r"[0-9]+", value.strip()):
                    raise AssertionError(f"{what}: header {name}: {value!r} is not an integer")
                instance = int(value)
            errs = self.schema_errors(f"{h_ptr}/schema", instance)
            if errs:
                raise AssertionError(f"{what}: header {name}: {value!r}: {errs[0].message}")

        content = resp.get("content")
        if not content:
            if body_bytes:
                raise AssertionError(f"{what}: the document describes no body, got {len(body_bytes)} bytes")
            return None
        ctype = (hdrs.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype not in content:
            raise AssertionError(f"{what}: Content-Type {ctype or '(none)'!r} is not documented "
                                 f"(documented: {', '.join(content)})")
        try:
            body = json.loads(body_bytes)
        except (ValueError, UnicodeDecodeError) as e:
            raise AssertionError(f"{what}: the body is not JSON ({e}): {body_bytes[:200]!r}") from None
        schema_ptr = f"{resp_ptr}/content/{pointer_escape(ctype)}/schema"
        if "schema" in content[ctype]:
            errs = self.schema_errors(schema_ptr, body)
            if errs:
                e = errs[0]
                at = "/" + "/".join(str(p) for p in e.absolute_path)
                more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
                raise AssertionError(f"{what}: body at {at}: {e.message}{more}\n"
                                     f"schema {schema_ptr}; body {json.dumps(body)[:500]}")
        return body


def validated_request(validator, base_url, method, path, body=None, headers=None, timeout=10):
    """Sends method path to base_url (e.g. http://127.0.0.1:8080) with urllib
    and checks the response with validator. body: bytes or str as is, any
    other value as JSON (Content-Type application/json unless headers set
    one). Returns (status, headers, body bytes); headers is the response's
    http.client.HTTPMessage (case-insensitive get)."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base_url.rstrip("/") + path, data=data, headers=headers, method=method.upper())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, resp_headers, resp_body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, resp_headers, resp_body = e.code, e.headers, e.read()
        e.close()
    validator.check(method, path, status, resp_headers, resp_body)
    return status, resp_headers, resp_body
