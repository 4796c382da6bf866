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
