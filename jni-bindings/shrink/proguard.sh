#!/usr/bin/env bash
# Shrinks, optimizes and obfuscates a jar with Debian's ProGuard (proguard-cli), against the
# running JDK's java.base and java.logging as library classes.
#   proguard.sh IN.jar OUT.jar CACHE_DIR RULES.pro...
# Writes OUT.jar and its mapping OUT.jar.map. The library jar is made once per JDK into
# CACHE_DIR (see JdkLibraryJar.java for why it is not the jmod itself). IN.jar must hold
# class files of Java 11 (javac --release 11): ProGuard 6.2 reads no newer ones.
set -euo pipefail
in=$1 out=$2 cache=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)

java_version=$(java -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.runtime\.version = //p' | tr -c 'A-Za-z0-9.\n' '_')
lib=$cache/jdk-${java_version:-unknown}-library.jar
if [ ! -f "$lib" ]; then
    mkdir -p "$cache"
    java "$here/JdkLibraryJar.java" "$lib.part" java.base java.logging
    mv "$lib.part" "$lib"
fi

rules=()
for r in "$@"; do rules+=("@$r"); done
if ! proguard -injars "$in" -outjars "$out" -libraryjars "$lib" -printmapping "$out.map" \
    "${rules[@]}" >"$out.log" 2>&1; then
    cat "$out.log" >&2
    exit 1
fi
