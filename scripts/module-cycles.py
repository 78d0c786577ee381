#!/usr/bin/env python3
"""Prints the import loops between the modules of one crate.

Usage: scripts/module-cycles.py CRATE_SRC_DIR [--skip-tests] [--fold] [--edges]

Reads every `.rs` file under CRATE_SRC_DIR (except `bin/`), takes each file as
one module (`host/mod.rs` is `host`, `host/remote.rs` is `host::remote`), and
draws an edge from a module to every module it names: in `use crate::…`
statements (brace groups expanded), in inline `crate::x::…` paths, in
`super::…` paths written at a file's top level, and in `use child::…` of a
module's own children. `use super::*` inside an inline `mod tests` names the
file itself and draws nothing. Comments and string literals are ignored.

--skip-tests  leaves out `#[cfg(test)]` modules (test-only edges).
--fold        takes a directory module and its children as one node.
--edges       also prints the whole graph.

Prints each strongly connected component of more than one module (an import
loop) with one cycle through it, and exits 1 if there is any.
"""

import os
import re
import sys


def module_name(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return "crate"
    return "::".join(rel)


def strip_comments_and_strings(text):
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (
            i and (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or (
            c == "'" and re.match(r"'\\[ux]", text[i:i + 3])
        ):
            end = text.find("'", i + 2)
            out.append("' '")
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def cut_test_modules(text):
    """Removes `#[cfg(test)] mod name { … }` blocks (after comments and strings are gone)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
        if not m:
            return text
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]


def expand_use_tree(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    depth = 0
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                prefix, inner = tree[:i], tree[i + 1: tree.rindex("}")]
                parts, level, start = [], 0, 0
                for j, d in enumerate(inner):
                    if d == "{":
                        level += 1
                    elif d == "}":
                        level -= 1
                    elif d == "," and level == 0:
                        parts.append(inner[start:j])
                        start = j + 1
                parts.append(inner[start:])
                result = []
                for part in parts:
                    if part:
                        result.extend(expand_use_tree(prefix + part))
                return result
            depth += 1
    return [tree]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if len(args) != 1:
        sys.exit(__doc__)
    src = args[0].rstrip("/")
    files = {}
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not (root == src and d == "bin"))
        for name in sorted(names):
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                files[module_name(src, path)] = path
    modules = set(files)

    def resolve(segments):
        """The longest known module a path from the crate root names."""
        best = None
        for k in range(1, len(segments) + 1):
            if "::".join(segments[:k]) in modules:
                best = "::".join(segments[:k])
        return best

    def fold(module):
        return module.split("::")[0] if "--fold" in flags else module

    graph = {fold(m): set() for m in modules}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = strip_comments_and_strings(f.read())
        if "--skip-tests" in flags:
            text = cut_test_modules(text)
        parent = module.rsplit("::", 1)[0] if "::" in module else "crate"
        targets = set()
        for m in re.finditer(r"^([ \t]*)(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text, re.M):
            indented, tree = bool(m.group(1)), m.group(2)
            for used in expand_use_tree(tree):
                segments = [s for s in used.split("::") if s and not s.startswith("*")]
                if not segments:
                    continue
                if segments[0] == "crate":
                    targets.add(resolve(segments[1:]))
                elif segments[0] == "super" and not indented:
                    base = [] if parent == "crate" else parent.split("::")
                    targets.add(resolve(base + segments[1:]) or (parent if parent in modules else None))
                elif segments[0] not in ("self", "super", "std", "core", "alloc"):
                    targets.add(resolve(module.split("::") + segments))
        for m in re.finditer(r"(?<![\w:])crate((?:::\w+)+)", text):
            targets.add(resolve(m.group(1).strip(":").split("::")))
        for m in re.finditer(r"^[^\n]*?(?<![\w:])super((?:::\w+)+)", text, re.M):
            line = m.group(0)
            if not line.startswith((" ", "\t")):
                base = [] if parent == "crate" else parent.split("::")
                targets.add(resolve(base + m.group(1).strip(":").split("::")))
        for target in targets:
            if target and target != "crate" and fold(target) != fold(module):
                graph[fold(module)].add(fold(target))

    if "--edges" in flags:
        for module in sorted(graph):
            print(f"{module} -> {', '.join(sorted(graph[module])) or '(none)'}")
        print()

    # Tarjan's strongly connected components.
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)

    def one_cycle(component):
        members, start = set(component), component[0]
        paths, frontier = {start: [start]}, [start]
        while frontier:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        return paths[v] + [start]
                    if w not in paths:
                        paths[w] = paths[v] + [w]
                        nxt.append(w)
            frontier = nxt
        return component

    edges = sum(len(t) for t in graph.values())
    print(f"{len(graph)} modules, {edges} edges, {len(components)} import loop(s)")
    for component in sorted(components):
        print(f"loop among {{{', '.join(component)}}}")
        print(f"  e.g. {' -> '.join(one_cycle(component))}")
        for v in component:
            inside = sorted(graph[v] & set(component))
            print(f"  {v} -> {', '.join(inside)}")
    sys.exit(1 if components else 0)


if __name__ == "__main__":
    main()
