#!/usr/bin/env bash
# Checks that consumer-rules.pro names everything the native code (jni-bindings/src) looks
# up by name: every member name given to jni_str! (GetMethodID, GetFieldID, ... targets) and
# every io.tapemu class path; and that every class declaring native methods is under
# io.tapemu (which the native-method rule covers). Names of java.* classes are the
# platform's and need no rule.
#   check-rules.sh RULES.pro RUST_SRC_DIR JAVA_SRC_DIR
set -euo pipefail
rules=$1 src=$2 java=$3
status=0
# Rules without comments.
body=$(sed -e 's/#.*$//' "$rules")

members=$( { grep -rhoE 'jni_str!\("[A-Za-z_$<][A-Za-z0-9_$>]*"\)' "$src" || true; } |
    sed -E 's/jni_str!\("(.*)"\)/\1/' | sort -u)
for m in $members; do
    grep -qF -- "$m(" <<<"$body" || { echo "consumer rules: no rule keeps $m (looked up in $src)" >&2; status=1; }
done
classes=$( { grep -rhoE '"io/tapemu/[A-Za-z0-9_/$]+"' "$src" || true; } | tr -d '"' | tr '/' '.' | sort -u)
for c in $classes; do
    grep -qF -- "$c" <<<"$body" || { echo "consumer rules: no rule keeps class $c (used in $src)" >&2; status=1; }
done
while IFS= read -r f; do
    pkg=$(sed -n 's/^package \([a-zA-Z0-9_.]*\);.*/\1/p' "$f" | head -1)
    case $pkg in
        io.tapemu | io.tapemu.*) ;;
        *) echo "consumer rules: $f declares native methods outside io.tapemu" >&2; status=1 ;;
    esac
done < <(grep -rlE '[[:space:]]native[[:space:]]' --include='*.java' "$java" || true)
n_members=$(wc -w <<<"$members")
n_classes=$(wc -w <<<"$classes")
[ "$status" = 0 ] && echo "consumer rules: the $n_members members and $n_classes io.tapemu classes native code names are kept"
exit $status
