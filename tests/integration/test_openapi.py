"""docs/openapi.yaml describes exactly the routes in src/api/routes.c."""
import os
import re

import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def route_table():
    src = open(os.path.join(ROOT, "src", "api", "routes.c")).read()
    found = set()
    for method, pattern in re.findall(r'\{"([A-Z]+)",\s*"([^"]+)"', src):
        found.add((method.lower(), re.sub(r"\{(\w+)\*\}", r"{\1}", pattern)))
    return found


def documented():
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs", "openapi.yaml")))
    out = set()
    for path, ops in spec["paths"].items():
        for method in ops:
            if method in ("get", "put", "post", "delete", "patch"):
                out.add((method, path))
    return out


def test_openapi_matches_route_table():
    routes = route_table()
    assert len(routes) >= 10
    assert routes == documented()


def error_table_codes():
    src = open(os.path.join(ROOT, "include", "citrus", "errors.h")).read()
    return {code for code in re.findall(r'X\(\w+,\s*-?\d+,\s*"(\w+)"', src)} - {"ok"}


def test_openapi_lists_every_error_code():
    """Every code the server can answer (the error table) is in the spec's
    Error schema, and the spec lists none that does not exist."""
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs", "openapi.yaml")))
    listed = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
                 ["code"]["enum"])
    table = error_table_codes()
    assert len(table) >= 40
    assert listed == table, (sorted(table - listed), sorted(listed - table))


def route_bodies():
    """(method, path) -> the route's body kind (ROUTE_BODY_JSON, ...)."""
    src = open(os.path.join(ROOT, "src", "api", "routes.c")).read()
    return {(m.lower(), re.sub(r"\{(\w+)\*\}", r"{\1}", p)): body
            for m, p, body in re.findall(r'\{"([A-Z]+)",\s*"([^"]+)",\s*\w+,\s*(ROUTE_BODY_\w+)',
                                         src)}


def spec_ops():
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs", "openapi.yaml")))
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield method, path, {str(k) for k in op.get("responses", {})}


def test_openapi_lists_405_and_415_where_the_server_answers_them():
    """Every path answers 405 to the methods it does not take; a PUT or PATCH
    whose body must be JSON answers 415 to another Content-Type; a POST
    answers 403 cross_origin to a form or text (what a page may send
    cross-site) and 415 to any other type that is not JSON."""
    bodies = route_bodies()
    assert len(bodies) >= 10
    for method, path, codes in spec_ops():
        assert "405" in codes, (method, path)
        body = bodies[(method, path)]
        if body == "ROUTE_BODY_JSON" and method in ("put", "patch"):
            assert "415" in codes, (method, path)
        if method == "post":
            assert "415" in codes and "403" in codes, (method, path, codes)


def test_openapi_citrus_api_lists_its_error_statuses():
    want = {
        ("post", "/api/register"): {"400", "401", "403", "405", "409", "413", "422", "503"},
        ("post", "/api/register/batch"): {"400", "401", "403", "405", "409", "413", "422",
                                          "503"},
        ("get", "/api/shard/{shardKey}"): {"400", "401", "403", "404", "405", "503"},
        ("get", "/api/shards/health"): {"401", "403", "405"},
        ("post", "/v1/query"): {"400", "403", "404", "405", "503"},
        ("post", "/v1/tx"): {"400", "403", "404", "405", "503"},
    }
    ops = {(m, p): codes for m, p, codes in spec_ops()}
    assert {p for _, p in ops if p.startswith("/api/")} == \
        {p for _, p in want if p.startswith("/api/")}
    for op, codes in want.items():
        assert codes <= ops[op], (op, sorted(codes - ops[op]))
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs", "openapi.yaml")))
    # the unknown-fields rule: stated, and the Citrus API's bodies are closed
    assert "unknown field" in spec["info"]["description"]
    for path in ("/api/register", "/api/register/batch"):
        schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["additionalProperties"] is False, path
