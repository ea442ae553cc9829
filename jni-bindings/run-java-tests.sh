#!/usr/bin/env bash
# Host-JVM tests of the Java API (io.tapemu) against the real native library:
#  1. builds the cdylib (tapemu-jni) and checks its Java_* exports against the `native`
#     declarations (check-symbols.sh);
#  2. javac's the API, the tests and the demo's SDK-free code into a temp dir;
#  3. runs the plain Java runners under -Xcheck:jni: unit + long-run groups and the demo's
#     host test always, the namespace-lab group as root (skipped otherwise, or with
#     TAPEMU_LAB=skip; a failure when CI=true);
#  4. runs them all again on a build shrunk, optimized and obfuscated by ProGuard with only
#     consumer-rules.pro and the runners' main methods kept, as an app's release build would
#     be (see run_shrunk); the README's Java example, the Android library module's files and
#     the keep rules are checked on the way;
#  5. fails on any failed test or any JNI warning, and ends with "jni: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}

cargo build --quiet -p tapemu-jni
libdir=$target/debug
so=$libdir/libtapemu_jni.so
[ -f "$so" ] || { echo "no $so" >&2; exit 1; }

tmp=$(mktemp -d)
lab_is_up=0
cleanup() {
    if [ "$lab_is_up" = 1 ]; then lab_down || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

jni-bindings/check-symbols.sh "$so" jni-bindings/java

mapfile -t api < <(find jni-bindings/java -name '*.java' | sort)
# The Android library module's own classes compile here against the SDK stand-ins in javatest.
mapfile -t tests < <(find jni-bindings/javatest jni-bindings/android/src -name '*.java' | sort)
javac -Xlint:all -Werror -d "$tmp/classes" "${api[@]}" "${tests[@]}"
echo "javac: API (${#api[@]} files) and tests (${#tests[@]} files) compiled"

# The demo's Android-independent code (android-demo/.../core) compiles against the same
# API sources and is tested here; only the thin VpnService/Activity glue needs the SDK.
mapfile -t demo < <(find android-demo/app/src/main/java -path '*/core/*' -name '*.java' | sort)
mapfile -t demo_tests < <(find android-demo/host-test -name '*.java' | sort)
javac -Xlint:all -Werror -cp "$tmp/classes" -d "$tmp/classes" "${demo[@]}" "${demo_tests[@]}"
echo "javac: android-demo SDK-free code (${#demo[@]} files) and its host test compiled"

total_passed=0
total_failed=0
status=0
classpath=$tmp/classes

# check LABEL CMD...: a check that is not a Java runner, counted as one test.
check() {
    local label=$1
    shift
    if "$@"; then
        total_passed=$((total_passed + 1))
    else
        echo "$label: FAILED" >&2
        total_failed=$((total_failed + 1))
        status=1
    fi
}

# The README's Java block is the marked region of the compiled example, verbatim.
readme_example_matches() {
    local example=jni-bindings/javatest/io/tapemu/example/ExampleVpnService.java
    if diff <(sed -n '/^```java$/,/^```$/p' README.md | sed '1d;$d') \
        <(sed -n '/^\/\/ README:begin$/,/^\/\/ README:end$/p' "$example" | sed '1d;$d') >"$tmp/readme.diff"; then
        echo "README: the Java example is $example (compiled above)"
    else
        echo "README: its java block differs from the marked region of $example:" >&2
        cat "$tmp/readme.diff" >&2
        return 1
    fi
}
check readme readme_example_matches
check android-module jni-bindings/android/check.sh
check nullness jni-bindings/check-nullness.py jni-bindings/java jni-bindings/android/src
check consumer-rules jni-bindings/shrink/check-rules.sh jni-bindings/consumer-rules.pro jni-bindings/src jni-bindings/java

# run_java LABEL [PREFIX...] -- [JVM OPTIONS...] MAIN_CLASS ARGS...: runs a test runner;
# PREFIX (e.g. ip netns exec NS) goes before java.
run_java() {
    local label=$1 prefix=()
    shift
    while [ "$1" != "--" ]; do prefix+=("$1"); shift; done
    shift
    local rc=0
    "${prefix[@]}" java -Xcheck:jni -Djava.library.path="$libdir" -cp "$classpath" \
        -Dtapemu.data="$repo/tests/data" \
        "$@" >"$tmp/$label.out" 2>"$tmp/$label.err" || rc=$?
    cat "$tmp/$label.out"
    # Listener exceptions are thrown on purpose by the misuse tests; show the rest. (The log
    # header names TapEmulator.listenerFailed, obfuscated in the shrunk run.)
    grep -v -e 'expected in this test' -e 'listener bug' -e '^[[:space:]]*at ' -e 'listenerFailed' \
        -e ' io\.tapemu\.TapEmulator [A-Za-z]*$' -e 'WARNING: tapemu listener' -e '^$' "$tmp/$label.err" >&2 || true
    local line p f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/$label.out" | tail -1 || true)
    if [ -z "$line" ]; then
        echo "$label: the runner ended without a result line (exit $rc)" >&2
        total_failed=$((total_failed + 1))
        status=1
        return
    fi
    p=${line%% passed*}
    f=${line#*, }
    f=${f%% failed*}
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    [ "$rc" = 0 ] && [ "$f" = 0 ] || status=1
    if grep -qE 'JNI local refs|WARNING in native method|FATAL ERROR in native method' \
        "$tmp/$label.out" "$tmp/$label.err"; then
        echo "$label: -Xcheck:jni reported problems:" >&2
        grep -E 'JNI local refs|WARNING in native method|FATAL ERROR' "$tmp/$label.out" "$tmp/$label.err" >&2
        total_failed=$((total_failed + 1))
        status=1
    fi
}

lab_reason=""
if [ "${TAPEMU_LAB:-}" = skip ]; then
    lab_reason="TAPEMU_LAB=skip"
elif [ "$(id -u)" != 0 ]; then
    lab_reason="not root"
else
    for bin in ip dnsmasq ethtool ping socat; do
        command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || lab_reason="$bin missing"
    done
fi

# run_suite SUFFIX: every runner on $classpath, each output labelled NAME$SUFFIX.
run_suite() {
    run_java "host$1" -- --add-opens java.base/java.io=ALL-UNNAMED io.tapemu.TestRunner unit longrun
    run_java "demo$1" -- --add-opens java.base/java.io=ALL-UNNAMED io.tapemu.DemoHostTest
    if [ -z "$lab_reason" ]; then
        # shellcheck source=../scripts/lab.sh
        source scripts/lab.sh
        lab_is_up=1
        lab_up vxlan
        run_java "lab$1" ip netns exec "$LAB_PHONE" -- --add-opens java.base/java.io=ALL-UNNAMED \
            -Dtapemu.link="$LAB_LINK_URL" \
            -Dtapemu.lanhost="$LAB_LAN_HOST" -Dtapemu.dnsmasqlog="$LAB_DNSMASQ_LOG" \
            -Dtapemu.hostns="$LAB_HOST" \
            io.tapemu.TestRunner lab
        lab_down
        lab_is_up=0
    elif [ "${CI:-}" = true ]; then
        echo "lab tests cannot run ($lab_reason) and CI=true: failing" >&2
        total_failed=$((total_failed + 1))
        status=1
    else
        echo "lab tests skipped: $lab_reason"
    fi
}

# The release build an app makes, on the host: the API, the tests and the demo's core
# (javac --release 11, what ProGuard 6.2 reads) shrunk, optimized and obfuscated by ProGuard
# keeping only consumer-rules.pro and the runners' main methods, then the whole suite on
# it. First a negative check: with only Android's default JNI rule (native method names)
# and not consumer-rules.pro, constructing an emulator must fail.
run_shrunk() {
    if ! command -v proguard >/dev/null 2>&1; then
        if [ "${CI:-}" = true ]; then
            echo "shrunk run cannot run (proguard missing) and CI=true: failing" >&2
            total_failed=$((total_failed + 1))
            status=1
        else
            echo "shrunk run skipped: proguard missing (apt-get install proguard-cli)"
        fi
        return
    fi
    local shrink=jni-bindings/shrink cache=$target/proguard
    javac --release 11 -Xlint:all -Xlint:-options -Werror -d "$tmp/classes11" "${api[@]}" "${tests[@]}"
    javac --release 11 -Xlint:all -Xlint:-options -Werror -cp "$tmp/classes11" -d "$tmp/classes11" \
        "${demo[@]}" "${demo_tests[@]}"
    jar cf "$tmp/app.jar" -C "$tmp/classes11" .

    "$shrink/proguard.sh" "$tmp/app.jar" "$tmp/no-rules.jar" "$cache" \
        "$shrink/android-defaults.pro" "$shrink/entry-points.pro"
    local probe
    probe=$(java -Djava.library.path="$libdir" -cp "$tmp/no-rules.jar" io.tapemu.ShrinkProbe 2>&1) || true
    if grep -q 'construction failed.*onNativeEvent' <<<"$probe"; then
        echo "shrink without consumer-rules.pro: $probe"
        total_passed=$((total_passed + 1))
    else
        echo "shrink without consumer-rules.pro: expected construction to fail on onNativeEvent, got: $probe" >&2
        total_failed=$((total_failed + 1))
        status=1
    fi

    "$shrink/proguard.sh" "$tmp/app.jar" "$tmp/shrunk.jar" "$cache" \
        jni-bindings/consumer-rules.pro "$shrink/entry-points.pro"
    local classes_in classes_out renamed
    classes_in=$(jar tf "$tmp/app.jar" | grep -c '\.class$')
    classes_out=$(jar tf "$tmp/shrunk.jar" | grep -c '\.class$')
    renamed=$(awk '/^[^ ].* -> .*:$/ && $1 ":" != $3 { n++ } END { print n + 0 }' "$tmp/shrunk.jar.map")
    echo "shrunk with consumer-rules.pro: $classes_in classes in, $classes_out out, $renamed renamed;" \
        "the suite again on it:"
    classpath=$tmp/shrunk.jar
    run_suite -shrunk
    classpath=$tmp/classes
}

run_suite ""
run_shrunk

echo "jni: $total_passed passed, $total_failed failed"
exit $status
