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
