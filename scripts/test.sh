#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, replay and end-to-end tests, and the
# host-JVM tests of the Java API.
# Installs the Debian packages the end-to-end tests need when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg_bin in dnsmasq-base:dnsmasq tcpdump:tcpdump iproute2:ip iputils-ping:ping iperf3:iperf3 radvd:radvd socat:socat ethtool:ethtool isc-dhcp-client:dhclient openjdk-17-jdk-headless:javac binutils:nm proguard-cli:proguard openvpn:openvpn openssl:openssl kea-dhcp4-server:kea-dhcp4 isc-dhcp-server:dhcpd tinc:tincd udhcpd:udhcpd; do
  pkg=${pkg_bin%%:*} bin=${pkg_bin##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "installing: ${need[*]}"
  for attempt in 1 2 3 4 5; do
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; then
      break
    fi
    echo "apt-get failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 10))
  done
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

# The Android side is type-checked (no SDK or NDK needed for clippy): the core with its
# driver, and the JNI bridge with its logcat code, for each ABI an app ships.
android_targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android)
installed_targets=$(rustup target list --installed)
for target in "${android_targets[@]}"; do
  grep -qx "$target" <<<"$installed_targets" && continue
  for attempt in 1 2 3; do
    rustup target add "$target" && break
    echo "rustup target add $target failed (attempt $attempt), retrying" >&2
    sleep $((attempt * 10))
  done
done
for target in "${android_targets[@]}"; do
  echo "clippy for $target"
  cargo clippy -p tapemu -p tapemu-jni --target "$target" -- -D warnings
done
cargo build --workspace --bins
cargo test --workspace
# Java API on the host JVM: symbol check, javac, JNI tests (namespace lab as root).
jni-bindings/run-java-tests.sh
# Fuzz smoke: every cargo-fuzz target (tests/fuzz) for TAPEMU_FUZZ_SECONDS (60) each from
# its seeds; fails on a crash. Installs cargo-fuzz (and nightly) only when missing.
scripts/fuzz.sh --smoke "${TAPEMU_FUZZ_SECONDS:-60}"
