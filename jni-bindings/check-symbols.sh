#!/usr/bin/env bash
# Checks that the cdylib exports exactly one Java_* symbol per `native` method declared in
# the Java API sources, and nothing else under Java_*.
#   check-symbols.sh LIBRARY.so JAVA_SOURCE_DIR
set -euo pipefail
lib=$1
src=$2

# JNI short-name mangling of one identifier: _ -> _1 (our names are ASCII).
mangle() { printf '%s' "$1" | sed -e 's/_/_1/g'; }

expected=$(mktemp)
actual=$(mktemp)
trap 'rm -f "$expected" "$actual"' EXIT

while IFS= read -r file; do
    pkg=$(sed -n 's/^package \([a-zA-Z0-9_.]*\);.*/\1/p' "$file" | head -1)
    cls=$(basename "$file" .java)
    prefix="Java_$(mangle "$pkg" | tr . _)_$(mangle "$cls")"
    # Declarations may span lines: drop comments, join the file, then find "native <type> <name>(".
    sed -e 's://.*$::' "$file" | tr '\n' ' ' | sed -E 's:/\*([^*]|\*+[^*/])*\*+/: :g' |
        { grep -oE '[[:space:]]native[[:space:]]+[][A-Za-z0-9_.<>]+[[:space:]]+[A-Za-z0-9_]+[[:space:]]*\(' || true; } |
        sed -E 's/.*[[:space:]]([A-Za-z0-9_]+)[[:space:]]*\($/\1/' |
        while IFS= read -r m; do echo "${prefix}_$(mangle "$m")"; done
done < <(find "$src" -name '*.java' | sort) | sort >"$expected"

nm -D --defined-only "$lib" | awk '{print $3}' | grep '^Java_' | sort >"$actual" || true

dups=$(uniq -d "$expected")
if [ -n "$dups" ]; then
    echo "symbol check: overloaded native methods need long names: $dups" >&2
    exit 1
fi
missing=$(comm -23 "$expected" "$actual")
extra=$(comm -13 "$expected" "$actual")
n=$(wc -l <"$expected")
if [ -n "$missing" ] || [ -n "$extra" ]; then
    [ -z "$missing" ] || printf 'symbol check: native methods without an export:\n%s\n' "$missing" >&2
    [ -z "$extra" ] || printf 'symbol check: exports without a native method:\n%s\n' "$extra" >&2
    exit 1
fi
echo "symbol check: $n native methods, $n Java_* exports, all matched"
