#!/usr/bin/python3
"""scripts/exports.py — every function or variable a source file exports is
used by another file: by other code, a test, a benchmark or a fuzz target.

Fuzz targets (tests/fuzz, built apart) count as users by name. An export
nobody else uses is either dead code or a helper that should be
`static`; both are findings. The public API of libcitrus (citrus_*) and
main are exempt. Reads the symbol tables (nm) of the objects of a build
directory, so run it after a build: `scripts/exports.py build`.

Exit 0 when clean, 1 with one line per finding.
"""
import glob
import os
import re
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], capture_output=True, text=True).stdout
    defined = {line.split()[2] for line in out.splitlines() if len(line.split()) == 3}
    out = subprocess.run(["nm", "-u", obj], capture_output=True, text=True).stdout
    undefined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    return defined, undefined


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    cmake_files = os.path.join(build, "CMakeFiles")
    if not os.path.isdir(cmake_files):
        sys.exit(f"exports: no build in {build} (make build first)")
    src_objs = sorted(glob.glob(os.path.join(cmake_files, "citrus_*.dir", "src", "*", "*.o")))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def source_of(obj):  # .../citrus_x.dir/src/x/f.c.o -> <root>/src/x/f.c
        return os.path.join(root, "src", obj.split(os.sep + "src" + os.sep, 1)[-1][: -len(".o")])

    # Objects of files deleted since the build directory was made stay behind: skip them.
    src_objs = [o for o in src_objs if os.path.exists(source_of(o))]
    if not src_objs:
        sys.exit(f"exports: no objects of src/ under {cmake_files}")
    users = [o for o in glob.glob(os.path.join(cmake_files, "*.dir", "**", "*.o"), recursive=True)
             if "libcitrus_objs.dir" not in o
             and (os.sep + "src" + os.sep not in o or os.path.exists(source_of(o)))]
    defined_in = {}
    used_by = {}
    for obj in users:
        defined, undefined = symbols(obj)
        if obj in src_objs:
            for sym in defined:
                defined_in[sym] = obj
        for sym in undefined:
            used_by.setdefault(sym, set()).add(obj)
    # Fuzz targets are built apart (make fuzz-build): their sources count as
    # users by name.
    fuzz_text = "".join(open(f).read() for f in glob.glob(os.path.join(root, "tests", "fuzz", "*.c")))
    fuzz_words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", fuzz_text))
    problems = []
    for sym, obj in sorted(defined_in.items(), key=lambda kv: (kv[1], kv[0])):
        if sym.startswith("citrus_") or sym == "main" or sym in fuzz_words:
            continue
        if not used_by.get(sym, set()) - {obj}:
            rel = os.path.relpath(source_of(obj), root)
            problems.append(f"{rel}: {sym} is exported but used nowhere else "
                            "(make it static, or delete it)")
    for p in problems:
        print(p)
    if problems:
        print(f"exports: {len(problems)} problem(s)")
        return 1
    print(f"exports: {len(defined_in)} exported symbols, each used outside its own file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
