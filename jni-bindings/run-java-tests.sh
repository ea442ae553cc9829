#!/usr/bin/env bash
# Host-JVM tests of the Java API (io.tapemu) against the real native library:
#  1. builds the cdylib (tapemu-jni) and checks its Java_* exports against the `native`
#     declarations (check-symbols.sh);
#  2. javac's the API, the tests and the demo's SDK-free code into a temp dir;
#  3. runs the plain Java runners under -Xcheck:jni: unit + long-run groups and the demo's
#     host test always, the namespace-lab group as root (skipped otherwise, or with
#     TAPEMU_LAB=skip; a failure when CI=true);
#  4. fails on any failed test or any JNI warning, and ends with "jni: N passed, N failed".
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
mapfile -t tests < <(find jni-bindings/javatest -name '*.java' | sort)
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

# run_java LABEL [PREFIX...] -- [JVM OPTIONS...] MAIN_CLASS ARGS...: runs a test runner;
# PREFIX (e.g. ip netns exec NS) goes before java.
run_java() {
    local label=$1 prefix=()
    shift
    while [ "$1" != "--" ]; do prefix+=("$1"); shift; done
    shift
    local rc=0
    "${prefix[@]}" java -Xcheck:jni -Djava.library.path="$libdir" -cp "$tmp/classes" \
        -Dtapemu.data="$repo/tests/data" \
        "$@" >"$tmp/$label.out" 2>"$tmp/$label.err" || rc=$?
    cat "$tmp/$label.out"
    # Listener exceptions are thrown on purpose by the misuse tests; show the rest.
    grep -v -e 'expected in this test' -e 'listener bug' -e '^[[:space:]]*at ' -e 'listenerFailed' \
        -e 'WARNING: tapemu listener' -e '^$' "$tmp/$label.err" >&2 || true
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

run_java host -- io.tapemu.TestRunner unit longrun
run_java demo -- --add-opens java.base/java.io=ALL-UNNAMED io.tapemu.DemoHostTest

lab_reason=""
if [ "${TAPEMU_LAB:-}" = skip ]; then
    lab_reason="TAPEMU_LAB=skip"
elif [ "$(id -u)" != 0 ]; then
    lab_reason="not root"
else
    for bin in ip dnsmasq ethtool ping; do
        command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || lab_reason="$bin missing"
    done
fi
if [ -z "$lab_reason" ]; then
    # shellcheck source=../scripts/lab.sh
    source scripts/lab.sh
    lab_is_up=1
    lab_up vxlan
    run_java lab ip netns exec "$LAB_PHONE" -- -Dtapemu.link="$LAB_LINK_URL" \
        -Dtapemu.lanhost="$LAB_LAN_HOST" -Dtapemu.dnsmasqlog="$LAB_DNSMASQ_LOG" \
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

echo "jni: $total_passed passed, $total_failed failed"
exit $status
