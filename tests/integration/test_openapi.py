"""api/openapi.json, the document of relance's HTTP API, and the judges
that hold the server to it (tests/openapi.py):

- Redocly CLI's recommended rules find no error and no warning in it;
- every $ref in it resolves, every schema in it is valid JSON Schema
  2020-12, every operation has an operationId and 4xx responses, every
  response documents X-Request-Id, every 429 Retry-After, every POST
  the Idempotency-Key header;
- the Validator accepts a response the document describes and refuses
  one with a missing required member, a member of the wrong type, an
  undocumented status, an undocumented path, a missing required header
  or an undocumented Content-Type: it can fail.
No server is needed: the responses here are written by hand."""
import copy
import json
import os

import jsonschema
import pytest

import harness
import openapi

DOC = os.path.join(harness.SOURCE, "api", "openapi.json")
REQUEST_ID = "0123456789abcdef0123456789abcdef"
METHODS = openapi.HTTP_METHODS


@pytest.fixture(scope="module")
def doc():
    with open(DOC, "rb") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def validator():
    return openapi.Validator(DOC)


def operations(doc):
    for template, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield template, method, item[method]


def refs(node, where="#"):
    """Every ($ref, where it is) in node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v, where
            else:
                yield from refs(v, f"{where}/{openapi.pointer_escape(str(k))}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs(v, f"{where}/{i}")


def contact(**changes):
    c = {"id": "42", "email": "marie@acme.example", "external_id": "crm-00317", "first_name": "Marie",
         "last_name": None, "title": None, "company": "Acme", "company_domain": "acme.example",
         "timezone": "Europe/Paris", "fields": {"plan": "pro"},
         "created_at": "2026-03-02T09:00:00.123456Z", "updated_at": "2026-03-02T09:00:00Z"}
    c.update(changes)
    return c


def problem(slug, status, **more):
    p = {"type": f"urn:relance:problem:{slug}", "title": slug, "status": status, "detail": "what went wrong",
         "request_id": REQUEST_ID}
    p.update(more)
    return json.dumps(p).encode()


JSON = {"Content-Type": "application/json", "X-Request-Id": REQUEST_ID}
PROBLEM = {"Content-Type": "application/problem+json", "X-Request-Id": REQUEST_ID}


# ---- the linter

def test_redocly_finds_no_error_and_no_warning():
    res = openapi.lint(DOC)
    assert res.warnings == 0, f"redocly lint warnings:\n{res.text}"


def test_redocly_reports_an_error_it_finds(tmp_path, doc):
    """The lint can fail: an operation without a summary, a $ref to
    nothing are errors."""
    broken = copy.deepcopy(doc)
    del broken["paths"]["/healthz"]["get"]["summary"]
    broken["paths"]["/readyz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/Nothing"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(AssertionError) as e:
        openapi.lint(str(path))
    text = str(e.value)
    assert "error operation-summary at #/paths/~1healthz/get" in text, text
    assert "error no-unresolved-refs at #/paths/~1readyz/get/responses/200" in text, text


# ---- the document's own rules

def test_every_ref_resolves(doc, validator):
    found = list(refs(doc))
    assert len(found) > 50
    for ref, where in found:
        assert ref.startswith("#/"), f"{where}: $ref {ref} leaves the document"
        validator.resolve({"$ref": ref}, where)


def test_every_schema_is_valid_json_schema_2020_12(doc):
    assert doc["openapi"].startswith("3.1.")
    for name, schema in doc["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            pytest.fail(f"components/schemas/{name}: {e.message}")


def test_every_operation_has_an_operation_id_and_4xx_responses(doc):
    ids = []
    for template, method, op in operations(doc):
        assert op.get("operationId"), f"{method.upper()} {template}: no operationId"
        ids.append(op["operationId"])
        assert any(s.startswith("4") for s in op["responses"]), f"{method.upper()} {template}: no 4xx response"
    assert len(ids) == len(set(ids)), f"operationIds repeat: {ids}"
    assert len(ids) == 16


def test_headers_the_contract_requires_are_documented(doc, validator):
    for template, method, op in operations(doc):
        names = [p.get("name") for p in (validator.resolve(p, "")[0] for p in op.get("parameters", []))]
        assert (method == "post") == ("Idempotency-Key" in names), f"{method.upper()} {template}: Idempotency-Key"
        for status, resp in op["responses"].items():
            resp = validator.resolve(resp, "")[0]
            where = f"{method.upper()} {template} {status}"
            assert "X-Request-Id" in resp.get("headers", {}), f"{where}: no X-Request-Id"
            if status == "429":
                assert "Retry-After" in resp["headers"], f"{where}: no Retry-After"
            if method == "post" and status in ("200", "201"):
                assert "Idempotent-Replayed" in resp["headers"], f"{where}: no Idempotent-Replayed"
            if status.startswith(("4", "5")) and template.startswith("/v1/"):
                assert list(resp["content"]) == ["application/problem+json"], where


def test_only_the_probes_and_the_document_need_no_key(doc):
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"] == {**doc["components"]["securitySchemes"]["bearer"],
                                                              "type": "http", "scheme": "bearer"}
    open_ops = sorted(t for t, m, op in operations(doc) if op.get("security") == [])
    assert open_ops == ["/healthz", "/readyz", "/v1/openapi.json"]


# ---- the Validator can pass and fail

def test_a_documented_response_passes(validator):
    body = validator.check("GET", "/v1/contacts/42", 200, JSON, json.dumps(contact()).encode())
    assert body["id"] == "42"
    page = {"data": [contact(), contact(id="43", external_id=None)], "next": "opaque"}
    validator.check("GET", "/v1/contacts?limit=2&company_domain=acme.example", 200,
                    {**JSON, "content-type": "application/json; charset=utf-8"}, json.dumps(page).encode())
    validator.check("POST", "/v1/contacts", 201, {**JSON, "Idempotent-Replayed": "true"},
                    json.dumps(contact()).encode())
    results = {"results": [{"index": 0, "status": "created", "id": "7"},
                           {"index": 1, "status": "invalid",
                            "errors": [{"pointer": "/contacts/1/email", "message": "required"}]}]}
    validator.check("POST", "/v1/contacts/bulk", 200, JSON, json.dumps(results).encode())
    validator.check("POST", "/v1/contacts", 409, PROBLEM, problem("conflict", 409, contact_ids=["1", "2"]))
    validator.check("POST", "/v1/contacts", 429, {**PROBLEM, "Retry-After": "3"}, problem("rate-limited", 429))
    validator.check("DELETE", "/v1/contacts/42", 405, PROBLEM, problem("method-not-allowed", 405))
    validator.check("GET", "/readyz", 503, JSON, b'{"status":"not ready","reason":"database not reachable"}')
    validator.check("GET", "/healthz", 200, JSON, b'{"status":"ok"}')


@pytest.mark.parametrize("case, method, path, status, headers, body, message", [
    ("missing required member", "GET", "/v1/contacts/42", 200, JSON,
     {k: v for k, v in contact().items() if k != "updated_at"}, "'updated_at' is a required property"),
    ("wrong type", "GET", "/v1/contacts/42", 200, JSON, contact(id=42), "42 is not of type 'string'"),
    ("null where a string is required", "GET", "/v1/contacts/ext:crm-1", 200, JSON, contact(email=None),
     "None is not of type 'string'"),
    ("timestamp without Z", "GET", "/v1/contacts/42", 200, JSON, contact(created_at="2026-03-02T09:00:00+01:00"),
     "does not match"),
    ("undocumented member", "GET", "/v1/contacts/42", 200, JSON, contact(extra=1), "Additional properties"),
    ("undocumented status", "GET", "/v1/contacts/42", 418, JSON, {}, "status 418 is not documented"),
    ("undocumented path", "GET", "/v1/contact/42", 200, JSON, contact(), "no path of the document matches"),
    ("method a path lacks, answered 200", "DELETE", "/v1/contacts/42", 200, JSON, contact(),
     "no DELETE on /v1/contacts/{id}"),
    ("missing X-Request-Id", "GET", "/v1/contacts/42", 200, {"Content-Type": "application/json"}, contact(),
     "required header X-Request-Id is missing"),
    ("bad X-Request-Id", "GET", "/v1/contacts/42", 200, {**JSON, "X-Request-Id": "ABC"}, contact(),
     "header X-Request-Id"),
    ("429 without Retry-After", "GET", "/v1/contacts", 429, PROBLEM, None, "required header Retry-After"),
    ("problem as plain JSON", "GET", "/v1/contacts/42", 404, JSON, None, "Content-Type 'application/json'"),
    ("problem of another slug", "GET", "/v1/contacts/42", 404, PROBLEM, "forbidden", "was expected"),
    ("conflict without contact_ids", "POST", "/v1/contacts", 409, PROBLEM, "conflict",
     "'contact_ids' is a required property"),
    ("invalid bulk result without errors", "POST", "/v1/contacts/bulk", 200, JSON,
     {"results": [{"index": 0, "status": "invalid"}]}, "'errors' is a required property"),
    ("page without next", "GET", "/v1/contacts", 200, JSON, {"data": []}, "'next' is a required property"),
    ("body not JSON", "GET", "/healthz", 200, JSON, b"ok", "the body is not JSON"),
])
def test_an_undocumented_response_is_refused(validator, case, method, path, status, headers, body, message):
    if body is None or isinstance(body, str):
        slug = body or {404: "not-found", 429: "rate-limited"}[status]
        body = problem(slug, status)
    elif not isinstance(body, bytes):
        body = json.dumps(body).encode()
    with pytest.raises(AssertionError) as e:
        validator.check(method, path, status, headers, body)
    text = str(e.value)
    assert message in text, text
    assert f"{method} {path.split('?')[0]}" in text, text
