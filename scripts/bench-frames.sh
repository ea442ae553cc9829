#!/usr/bin/env bash
# The Java frame paths (io.tapemu.FrameBench: callback per-frame, batched, socket pair)
# beside the callback mode of a baseline commit, run alternately in one session so that
# every ratio is against a baseline measured in the same run. Each mode runs in a JVM of
# its own (no JIT profile or heap carried over from the mode before).
#
# The baseline is the last commit before batched callback mode (BASE, default f9518b5^):
# one onFrame upcall and one new byte[] per frame, sendFrame returning nothing. Its
# closed loop is the same as FrameBench's per-frame one (ARP requests in, replies out,
# at most 64 unanswered, 1 s warm-up), written against that API here.
#
# Usage: scripts/bench-frames.sh [ROUNDS] [SECONDS]   (default 3 rounds of 4 s per mode)
# IN_FLIGHT=N (default 64) changes the window of the current code's runs (the baseline's
# stays at 64).
# The baseline is built once into target/bench-base (a git worktree in a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3} SECS=${2:-4}
BASE=${BASE:-f9518b5^}
for bin in java javac git cargo; do
    command -v "$bin" >/dev/null || { echo "bench-frames: $bin is missing" >&2; exit 1; }
done

work=$(mktemp -d)
cleanup() {
    git worktree remove --force "$work/base" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p tapemu-jni
mapfile -t now_src < <(find jni-bindings/java jni-bindings/javatest jni-bindings/android/src -name '*.java')
javac -d "$work/now" "${now_src[@]}"

git worktree add -q --detach "$work/base" "$BASE"
CARGO_TARGET_DIR="$PWD/target/bench-base" cargo build --release -q -p tapemu-jni \
    --manifest-path "$work/base/Cargo.toml"
mkdir -p "$work/base-bench/io/tapemu"
cat >"$work/base-bench/io/tapemu/BaselineFrameBench.java" <<'EOF'
package io.tapemu;

import java.nio.ByteBuffer;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/** FrameBench's per-frame loop against the baseline API (sendFrame returns nothing). */
public final class BaselineFrameBench {
    public static void main(String[] args) throws Exception {
        int seconds = Integer.parseInt(args[0]);
        Semaphore credits = new Semaphore(64);
        AtomicLong replies = new AtomicLong();
        TapListener l = new TapListener() {
            @Override
            public void onFrame(ByteBuffer frame) {
                if (frame.remaining() >= 22 && frame.get(21) == 2) {
                    replies.incrementAndGet();
                    credits.release();
                }
            }
        };
        TapConfig cfg = TapConfig.builder().mac("02:00:5e:10:00:01")
                .staticAddress("192.0.2.50", 24, null).ipv6(false).callbackLink().build();
        byte[] req = Frames.arpRequest(Frames.mac("02:00:5e:10:00:99"), Frames.ip("192.0.2.1"),
                Frames.ip("192.0.2.50"));
        ByteBuffer one = ByteBuffer.allocateDirect(req.length);
        one.put(req).flip();
        try (TapEmulator tap = new TapEmulator(cfg, l)) {
            tap.start();
            long warm = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            long start = 0;
            long startReplies = 0;
            long end = Long.MAX_VALUE;
            while (System.nanoTime() < end) {
                if (start == 0 && System.nanoTime() >= warm) {
                    start = System.nanoTime();
                    startReplies = replies.get();
                    end = start + TimeUnit.SECONDS.toNanos(seconds);
                }
                if (!credits.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                    continue;
                }
                int n = 1 + credits.drainPermits();
                for (int i = 0; i < n; i++) {
                    tap.sendFrame(one);
                }
            }
            double rate = (replies.get() - startReplies) * 1e9 / (System.nanoTime() - start);
            System.out.printf("baseline per-frame: %.0f round trips/s%n", rate);
        }
        System.exit(0);
    }
}
EOF
mapfile -t base_src < <(find "$work/base/jni-bindings/java" "$work/base/jni-bindings/javatest" -name '*.java')
javac -d "$work/base-classes" "${base_src[@]}" "$work/base-bench/io/tapemu/BaselineFrameBench.java"

rate() { sed -n "s/^$1: *\([0-9]*\) \(round trips\|hand-offs\).*/\1/p"; }
# The last column: the window times the hand-offs per second of FrameBench's `wake` mode
# (two threads passing a token through a Semaphore, no emulator): what a closed loop
# whose two threads both wait once per window could reach with no work at all.
echo "| round | baseline per-frame | per-frame | batched | socket pair | batched / baseline | batched / per-frame | window × hand-offs/s |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    base=$(java -Djava.library.path=target/bench-base/release -cp "$work/base-classes" \
        io.tapemu.BaselineFrameBench "$SECS" | rate "baseline per-frame")
    now() {
        java --add-opens java.base/java.io=ALL-UNNAMED -Djava.library.path=target/release \
            -Dtapemu.inFlight="${IN_FLIGHT:-64}" \
            -cp "$work/now" io.tapemu.FrameBench "$SECS" "$1" | rate "$1"
    }
    per=$(now per-frame) batched=$(now batched) pair=$(now pair) wake=$(now wake)
    awk -v r="$round" -v b="$base" -v p="$per" -v t="$batched" -v s="$pair" -v w="$wake" \
        -v win="${IN_FLIGHT:-64}" 'BEGIN {
        printf "| %d | %.0f k | %.0f k | %.2f M | %.0f k | %.1f× | %.1f× | %.2f M |\n",
            r, b / 1e3, p / 1e3, t / 1e6, s / 1e3, t / b, t / p, win * w / 1e6 }'
done
