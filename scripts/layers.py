"""Checks that src/'s top-level modules only import downward, against the layer table in
docs/layers.toml, and that no import cycle exists between them.

    python3 scripts/layers.py [--graph]

A module may import (`crate::x`) a module of a lower layer, or of its own layer when that makes
no cycle (with no import climbing a layer, a cycle can only lie inside one layer). The table's `known` list holds today's exceptions, each an edge "a -> b" still to be
removed: a new upward import or cycle fails, and so does a listed edge that is gone (so the list
only shrinks). A short script rather than cargo-modules: it needs no build (cargo-modules compiles
rust-analyzer's crates, minutes on 2 cores) and reads the same `crate::` paths the code names.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table():
    layers, known, section = {}, set(), None
    for raw in open(os.path.join(ROOT, "docs", "layers.toml")):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "layers":
            name, _, mods = line.partition("=")
            level = int(name.strip().removeprefix("L"))
            for m in re.findall(r'"([a-z_]+)"', mods):
                layers[m] = level
        elif section == "known":
            for a, b in re.findall(r'"([a-z_]+) -> ([a-z_]+)"', line):
                known.add((a, b))
    return layers, known


def imports(text):
    """Top-level modules named by `crate::` paths, braces included (`crate::{a, b::{c}}`)."""
    text = re.sub(r"//[^\n]*", "", text)
    out = set()
    for m in re.finditer(r"crate::", text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, start = 0, i + 1
            for j in range(i, len(text)):
                c = text[j]
                if c == "{":
                    depth += 1
                    if depth == 1:
                        start = j + 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        part, d, names = text[start:j], 0, []
                        token = ""
                        for ch in part:
                            if ch == "{":
                                d += 1
                            elif ch == "}":
                                d -= 1
                            elif ch == "," and d == 0:
                                names.append(token)
                                token = ""
                                continue
                            token += ch
                        names.append(token)
                        for n in names:
                            n = n.strip().split("::")[0].strip()
                            if re.fullmatch(r"[a-z_]+", n) and n != "self":
                                out.add(n)
                        break
        else:
            n = re.match(r"[a-z_]+", text[i:])
            if n:
                out.add(n.group(0))
    return out


def graph():
    src = os.path.join(ROOT, "src")
    edges = {}
    for base, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(base, f), src)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            text = open(os.path.join(base, f)).read()
            edges.setdefault(top, set()).update(d for d in imports(text) if d != top)
    return edges


def cycles(edges):
    """Every edge that lies on a cycle (Tarjan's strongly connected components)."""
    index, low, stack, on, comp, n = {}, {}, [], set(), {}, [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            while True:
                w = stack.pop()
                on.discard(w)
                comp[w] = v
                if w == v:
                    break

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return {(a, b) for a, ds in edges.items() for b in ds if comp.get(a) == comp.get(b)}


def main():
    edges = graph()
    if "--graph" in sys.argv:
        for a in sorted(edges):
            print(a, "->", " ".join(sorted(edges[a])))
        return 0
    layers, known = table()
    problems = []
    for m in sorted(set(edges) | {d for ds in edges.values() for d in ds}):
        if m not in layers and m != "main":
            problems.append(f"src/{m}: not in docs/layers.toml: give it a layer")
    # Edges that never climb can only close a cycle inside one layer: find those there.
    flat = {a: {b for b in ds if layers.get(b) == layers.get(a)} for a, ds in edges.items()}
    looped = cycles(flat)
    seen = set()
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if a == "main" or b not in layers or a not in layers:
                continue
            bad = layers[b] > layers[a] or (a, b) in looped
            if bad:
                seen.add((a, b))
                if (a, b) not in known:
                    why = "an upward import" if layers[b] > layers[a] else "an import cycle"
                    problems.append(f"{a} -> {b}: {why} (layer {layers[a]} -> {layers[b]})")
    for a, b in sorted(known - seen):
        problems.append(f"{a} -> {b} is gone: remove it from docs/layers.toml's known list")
    for p in problems:
        print("layers:", p)
    print(f"layers: {len(edges)} modules, {sum(len(d) for d in edges.values())} imports, "
          f"{len(seen)} known exceptions left, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
