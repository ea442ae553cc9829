#!/usr/bin/env bash
# Runs tapemu's fuzz targets (tests/fuzz, a cargo-fuzz crate outside the workspace).
#
#   scripts/fuzz.sh TARGET MINUTES     run one target for MINUTES
#   scripts/fuzz.sh --smoke SECONDS    build, then run every target for SECONDS each;
#                                      exits non-zero if any target crashed
#   scripts/fuzz.sh --list             the targets
#
# Targets: link_frames (frames and clock steps into a static, a DHCP and an IPv6-only
# host, invariants checked after each step), tun_and_link (TUN packets mixed in),
# link_url (link URL parsing, Display round trip), dhcp_options (the DHCP option walker
# and its limits), ndp_options (the NDP option parser and DNSSL names) and
# config_validate (the Java API's configuration check, Config::validate).
#
# Needs rustup's nightly toolchain and cargo-fuzz; installs cargo-fuzz from crates.io when
# it is missing. Each target's corpus grows in tests/fuzz/corpus/TARGET (not committed)
# from the committed seeds in tests/fuzz/seeds/TARGET (regenerate those from tests/data
# with `cargo run --example fuzz-seeds` in tests/fuzz). A crash leaves its input in
# tests/fuzz/artifacts/TARGET/; replay it with
# `cargo +nightly fuzz run TARGET artifacts/TARGET/crash-...` in tests/fuzz.
set -euo pipefail
cd "$(dirname "$0")/../tests/fuzz"

TARGETS=(link_frames tun_and_link link_url dhcp_options ndp_options config_validate)

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

max_len() {
  case "$1" in
    link_url | config_validate) echo 512 ;;
    dhcp_options | ndp_options) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

# retry CMD...: runs CMD up to three times (the registries are sometimes slow).
retry() {
  for attempt in 1 2 3; do
    "$@" && return 0
    echo "fuzz.sh: '$*' failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 10))
  done
  return 1
}

ensure_tools() {
  if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain (cargo fuzz needs it)" >&2
    retry rustup toolchain install nightly --profile minimal
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    retry cargo install cargo-fuzz --locked
  fi
}

# run_target TARGET SECONDS: fuzz one target; prints its final stats; returns libFuzzer's
# status (non-zero on a crash, a leak, a timeout or running out of memory).
run_target() {
  local target=$1 seconds=$2 log status=0
  mkdir -p "corpus/$target" "artifacts/$target"
  log=$(mktemp)
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  # The last status line (executions, coverage, corpus), then the final stats.
  grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true
  grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|^==[0-9]+==|panicked|Test unit written|SUMMARY' "$log" || true
  if [ "$status" != 0 ]; then
    echo "---- $target failed (status $status); the end of its log:" >&2
    tail -40 "$log" >&2
  fi
  rm -f "$log"
  return "$status"
}

case "${1:-}" in
  --list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
  --smoke)
    seconds=${2:-60}
    [[ "$seconds" =~ ^[0-9]+$ ]] || usage
    ensure_tools
    cargo +nightly fuzz build
    failed=()
    for target in "${TARGETS[@]}"; do
      echo "== $target: ${seconds} s"
      run_target "$target" "$seconds" || failed+=("$target")
    done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz.sh: crashed: ${failed[*]}" >&2
      exit 1
    fi
    echo "fuzz.sh: ${#TARGETS[@]} targets, ${seconds} s each, no crash"
    ;;
  "" | -h | --help)
    usage
    ;;
  *)
    target=$1 minutes=${2:-}
    [[ " ${TARGETS[*]} " == *" $target "* ]] || { echo "fuzz.sh: no target $target" >&2; usage; }
    [[ "$minutes" =~ ^[0-9]+$ ]] || usage
    ensure_tools
    echo "== $target: ${minutes} min"
    run_target "$target" $((minutes * 60))
    ;;
esac
