#!/usr/bin/env python3
"""The core's module structure: no module imports through the root's
re-exports (`crate::Name`), and the top-level modules do not import each
other in a cycle. Prints the dependency graph; fails on a violation."""
import re
import sys
from pathlib import Path

SRC = Path("src")
mods = {}
for p in sorted(SRC.iterdir()):
    name = p.stem if p.is_file() else p.name
    if name in ("lib",) or p.suffix not in (".rs", ""):
        continue
    files = [p] if p.is_file() else sorted(p.rglob("*.rs"))
    mods[name] = files

failed = False
graph = {}
for name, files in mods.items():
    deps = set()
    for f in files:
        text = f.read_text()
        # Unit tests may use any module.
        cut = text.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            text = text[:cut]
        # Doc comments may name any path; only code counts.
        code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
        for m in re.finditer(r"(?<![\w$])crate::([A-Za-z_]\w*)", code):
            target = m.group(1)
            if target[0].isupper():
                print(f"{f}: imports `crate::{target}` through the root's re-exports")
                failed = True
            elif target != name and target in mods:
                deps.add(target)
        for m in re.finditer(r"(?<![\w$])crate::\{([^}]*)\}", code):
            for part in m.group(1).split(","):
                head = part.strip().split("::")[0]
                if head and head[0].isupper():
                    print(f"{f}: imports `crate::{head}` through the root's re-exports")
                    failed = True
                elif head != name and head in mods:
                    deps.add(head)
    graph[name] = deps

for name in sorted(graph):
    print(f"{name} -> {', '.join(sorted(graph[name])) or '-'}")

# Cycles (modules compiled only for tests are left out: `testing`).
graph.pop("testing", None)
for deps in graph.values():
    deps.discard("testing")
state = {}
stack = []
def visit(n):
    global failed
    state[n] = 1
    stack.append(n)
    for d in sorted(graph.get(n, ())):
        if state.get(d) == 1:
            print("cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            failed = True
        elif d not in state:
            visit(d)
    stack.pop()
    state[n] = 2
for n in sorted(graph):
    if n not in state:
        visit(n)
sys.exit(1 if failed else 0)
