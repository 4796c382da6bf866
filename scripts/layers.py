#!/usr/bin/python3
"""scripts/layers.py — checks the layering of src/ against docs/ARCHITECTURE.md.

The table between <!-- layers:begin --> and <!-- layers:end --> says which
layers each layer may use directly; a layer may include its own headers,
those of the layers it may use and, transitively, theirs, and the public
headers under include/citrus/. This check fails on:

  - an #include "x/..." that the table does not allow (or a relative one);
  - a folder of src/ that is not in the table, or a table row with no folder;
  - a cycle between layers in the table;
  - a cycle between files: modules (a .c and its .h) that include each other,
    directly or through others;
  - a Mermaid graph of the layers (between <!-- layers-graph:begin --> and
    <!-- layers-graph:end -->) that is not the one the table gives
    (`scripts/layers.py --mermaid` prints it).

Run by `make lint` and `make lint-quick`. Exit 0 when clean, 1 with one line
per finding otherwise.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCH = os.path.join(ROOT, "docs", "ARCHITECTURE.md")
SRC = os.path.join(ROOT, "src")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read_table(text):
    m = re.search(r"<!-- layers:begin -->(.*?)<!-- layers:end -->", text, re.S)
    if not m:
        sys.exit("layers: docs/ARCHITECTURE.md has no layers:begin/end table")
    deps = {}
    for line in m.group(1).splitlines():
        row = re.match(r"^\| `([a-z]+)` \|([^|]*)\|", line)
        if row:
            deps[row.group(1)] = re.findall(r"`([a-z]+)`", row.group(2))
    return deps


def mermaid(deps):
    lines = ["```mermaid", "graph TD"]
    for layer, uses in deps.items():
        if not uses:
            lines.append(f"  {layer}")
        for u in uses:
            lines.append(f"  {layer} --> {u}")
    lines.append("```")
    return "\n".join(lines)


def closure(deps):
    out = {}

    def visit(layer, seen):
        for d in deps.get(layer, []):
            if d not in seen:
                seen.add(d)
                visit(d, seen)
        return seen

    for layer in deps:
        out[layer] = visit(layer, set())
    return out


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return comps


def main():
    text = open(ARCH).read()
    deps = read_table(text)
    if "--mermaid" in sys.argv:
        print(mermaid(deps))
        return 0
    problems = []

    for layer, uses in deps.items():
        for u in uses:
            if u not in deps:
                problems.append(f"table: {layer} uses {u}, which is not a layer")
    for comp in cycles({k: set(v) for k, v in deps.items()}):
        problems.append("table: layers in a cycle: " + " -> ".join(comp))
    allowed = closure(deps)

    g = re.search(r"<!-- layers-graph:begin -->\n(.*?)\n<!-- layers-graph:end -->", text, re.S)
    if not g or g.group(1).strip() != mermaid(deps):
        problems.append("docs/ARCHITECTURE.md: the Mermaid graph between layers-graph:begin/end "
                        "is not the table's (scripts/layers.py --mermaid prints it)")

    folders = sorted(d for d in os.listdir(SRC) if os.path.isdir(os.path.join(SRC, d)))
    for d in folders:
        if d not in deps:
            problems.append(f"src/{d}: a folder that is not in the layer table")
    for layer in deps:
        if layer not in folders:
            problems.append(f"table: layer {layer} has no folder src/{layer}")

    modules = {}  # "lib/feed" -> set of modules it includes
    for dirpath, _, files in os.walk(SRC):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, SRC)
            layer = rel.split("/")[0] if "/" in rel else None
            module = os.path.splitext(rel)[0]
            edges = modules.setdefault(module, set())
            for n, line in enumerate(open(path).read().splitlines(), 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                inc = m.group(1)
                where = f"src/{rel}:{n}"
                if ".." in inc.split("/") or "/" not in inc:
                    problems.append(f'{where}: #include "{inc}": name it by its layer ("layer/file.h")')
                    continue
                target = inc.split("/")[0]
                if target == "citrus":
                    continue
                if target not in deps:
                    problems.append(f'{where}: #include "{inc}": {target} is not a layer')
                    continue
                if layer is None:  # src/main.c: the top; it may use the CLI only
                    ok = target == "cli"
                else:
                    ok = target == layer or target in allowed.get(layer, ())
                if not ok:
                    problems.append(f'{where}: #include "{inc}": {layer or "main"} may not use '
                                    f'{target} (docs/ARCHITECTURE.md, "Layers")')
                target_module = os.path.splitext(inc)[0]
                if target_module != module:
                    edges.add(target_module)
    for comp in cycles(modules):
        problems.append("files in an include cycle: " + " <-> ".join(comp))

    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} problem(s)")
        return 1
    print(f"layers: {len(deps)} layers, {len(modules)} modules: no wrong-way include, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
