#!/usr/bin/env python3
"""Checks that every public method and constructor of the public io.tapemu classes says, for
each reference-typed parameter and return value, @NonNull or @Nullable (source-retention
annotations in io.tapemu, read by Android Studio and Kotlin). Usage: check-nullness.py DIR...
Prints each miss and exits 1 if there is any."""
import os
import re
import sys

PRIMITIVES = {"void", "int", "long", "boolean", "byte", "short", "char", "float", "double"}
ANNOTATED = re.compile(r"@(NonNull|Nullable)\b")


def split_params(s):
    out, depth, cur = [], 0, ""
    for c in s:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out]


def type_of(decl):
    """The type of 'annotations modifiers Type name' (annotations removed)."""
    words = re.sub(r"@\w+", "", decl).replace("final ", "").split()
    return " ".join(words[:-1]) if len(words) > 1 else ""


def check_file(path):
    text = open(path).read()
    if not re.search(r"^public (final |abstract )*(class|interface|enum|@interface) ", text, re.M):
        return []
    misses = []
    # Declarations: from a line starting with 'public' (or an interface's 'default') to '{' or ';'.
    lines = text.split("\n")
    in_interface = re.search(r"^public interface ", text, re.M) is not None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        starts = line.startswith("public ") or (in_interface and line.startswith("default "))
        if not starts or "(" not in line or " class " in line or " interface " in line or line.startswith("public enum"):
            i += 1
            continue
        decl, j = line, i
        while not re.search(r"\)[^(]*[{;]", decl) and j + 1 < len(lines):
            j += 1
            decl += " " + lines[j].strip()
        decl = re.match(r"[^{;]*\)[^(]*?(?=[{;])", decl).group(0)
        head, params = decl.split("(", 1)
        params = params.rsplit(")", 1)[0]
        name = head.split()[-1]
        ret = " ".join(head.split()[:-1])
        ret_words = [w for w in re.sub(r"@\w+", "", ret).split()
                     if w not in ("public", "static", "final", "default", "synchronized", "native", "abstract")]
        is_ctor = not ret_words
        if not is_ctor and ret_words[-1] not in PRIMITIVES and not ANNOTATED.search(ret):
            misses.append(f"{path}:{i + 1}: {name}: return type {' '.join(ret_words)} not annotated")
        for p in split_params(params):
            t = type_of(p)
            if t and t.split("<")[0] not in PRIMITIVES and not ANNOTATED.search(p):
                misses.append(f"{path}:{i + 1}: {name}: parameter '{p}' not annotated")
        i = j + 1
    return misses


def main():
    misses, files = [], 0
    for d in sys.argv[1:]:
        for root, _, names in os.walk(d):
            for n in sorted(names):
                if n.endswith(".java"):
                    files += 1
                    misses += check_file(os.path.join(root, n))
    for m in misses:
        print("nullness: " + m, file=sys.stderr)
    if misses:
        return 1
    print(f"nullness: every public method of the public classes in {files} files is annotated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
