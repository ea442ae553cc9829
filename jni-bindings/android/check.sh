#!/usr/bin/env bash
# Checks the Gradle files of the Android library module (this directory) and of android-demo
# as far as that is possible without the Android SDK and NDK (neither is on the machines the
# tests run on, so Gradle itself never runs here):
#  - every file or directory they name exists;
#  - the ABIs the library ships are the four cargo-ndk builds, each with its Rust target, the
#    same targets scripts/test.sh installs, and those are installed;
#  - cargo-ndk links with 16 KB pages and uses the Android cargo profile, which exists,
#    inherits release and is stripped without debug info;
#  - the consumer keep rules are the library's consumerProguardFiles;
#  - the demo app depends on the library module its settings include.
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=jni-bindings/android/build.gradle.kts
demo=android-demo
problems=0
fail() {
    echo "android module: $*" >&2
    problems=$((problems + 1))
}

# Files and directories named in file(), srcDir(), srcFile() and *ProguardFiles(), relative to
# the directory of the Gradle file that names them.
gradle_files=("$lib" "$demo/settings.gradle.kts" "$demo/build.gradle.kts" "$demo/app/build.gradle.kts")
n_paths=0
for g in "${gradle_files[@]}"; do
    [ -f "$g" ] || { fail "missing $g"; continue; }
    dir=$(dirname "$g")
    while IFS= read -r path; do
        n_paths=$((n_paths + 1))
        [ -e "$dir/$path" ] || fail "$g names $path, which does not exist ($dir/$path)"
    done < <(grep -oE '(file|srcDir|srcFile|consumerProguardFiles|proguardFiles)\("[^"]+"\)' "$g" |
        sed -E 's/^[A-Za-z]+\("(.*)"\)$/\1/')
done
for m in jni-bindings/android/src/main/AndroidManifest.xml "$demo/app/src/main/AndroidManifest.xml"; do
    [ -f "$m" ] || fail "missing $m"
done
ls jni-bindings/java/io/tapemu/TapEmulator.java >/dev/null 2>&1 || fail "no Java API under jni-bindings/java"
grep -q 'namespace = "io.tapemu"' "$lib" || fail "$lib: namespace is not io.tapemu"

# ABIs and Rust targets: exactly cargo-ndk's four, in the library's map.
expected="arm64-v8a=aarch64-linux-android
armeabi-v7a=armv7-linux-androideabi
x86=i686-linux-android
x86_64=x86_64-linux-android"
listed=$(grep -oE '"[a-z0-9_-]+" to "[a-z0-9_-]+-linux-android[a-z]*"' "$lib" |
    sed -E 's/"([^"]+)" to "([^"]+)"/\1=\2/' | sort)
[ "$listed" = "$expected" ] || fail "$lib: ABI -> Rust target map is
$listed
expected
$expected"
grep -qE 'rustTargets\.keys\.forEach \{ abi -> args \+= listOf\("-t", abi\) \}' "$lib" ||
    fail "$lib: cargo ndk is not given -t for every ABI of the map"
triples=$(sed 's/.*=//' <<<"$expected" | sort)
test_sh_triples=$(sed -n 's/^android_targets=(\(.*\))$/\1/p' scripts/test.sh | tr ' ' '\n' | sort)
[ "$triples" = "$test_sh_triples" ] || fail "scripts/test.sh android_targets differ from the library's Rust targets"
if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup target list --installed)
    for t in $triples; do
        grep -qx "$t" <<<"$installed" || fail "Rust target $t is not installed (rustup target add $t)"
    done
else
    fail "rustup missing: cannot check the Rust targets"
fi

# 16 KB pages, the cargo profile, the package cargo-ndk builds.
grep -qF 'max-page-size=16384' "$lib" || fail "$lib: no -z max-page-size=16384 link flag"
grep -qF 'environment("RUSTFLAGS", listOfNotNull(System.getenv("RUSTFLAGS"), pageSizeFlag)' "$lib" ||
    fail "$lib: the page-size flag does not reach cargo ndk's RUSTFLAGS"
profile=$(sed -n 's/^val cargoProfile = "\(.*\)"$/\1/p' "$lib")
[ -n "$profile" ] || fail "$lib: no cargoProfile"
grep -qF '"--profile", cargoProfile' "$lib" || fail "$lib: cargo ndk does not build with --profile cargoProfile"
section=$(awk -v h="[profile.$profile]" '$0 == h { on = 1; next } /^\[/ { on = 0 } on' Cargo.toml)
if [ -z "$section" ]; then
    fail "Cargo.toml has no [profile.$profile]"
else
    for kv in 'inherits = "release"' 'debug = 0' 'strip = true'; do
        grep -qxF "$kv" <<<"$section" || fail "[profile.$profile] lacks '$kv'"
    done
fi
grep -qF '"-p", "tapemu-jni"' "$lib" || fail "$lib: cargo ndk does not build tapemu-jni"
grep -qE '^crate-type = \[.*"cdylib"' jni-bindings/Cargo.toml || fail "tapemu-jni is not a cdylib"
grep -qF '"--platform", minSdkVersion.toString()' "$lib" || fail "$lib: cargo ndk --platform is not minSdk"

# Keep rules and the demo's dependency on the module.
grep -qF 'consumerProguardFiles("../consumer-rules.pro")' "$lib" || fail "$lib: consumer-rules.pro is not a consumerProguardFiles"
grep -qF 'include(":tapemu")' "$demo/settings.gradle.kts" || fail "$demo/settings.gradle.kts does not include :tapemu"
grep -qF 'project(":tapemu").projectDir = file("../jni-bindings/android")' "$demo/settings.gradle.kts" ||
    fail "$demo/settings.gradle.kts: :tapemu is not jni-bindings/android"
grep -qF 'implementation(project(":tapemu"))' "$demo/app/build.gradle.kts" || fail "the demo app does not depend on :tapemu"
grep -qF 'id("com.android.library")' "$demo/build.gradle.kts" || fail "$demo/build.gradle.kts does not declare the library plugin"
lib_min=$(sed -n 's/^val minSdkVersion = \([0-9]*\)$/\1/p' "$lib")
app_min=$(sed -n 's/^ *minSdk = \([0-9]*\)$/\1/p' "$demo/app/build.gradle.kts")
[ -n "$lib_min" ] && [ -n "$app_min" ] && [ "$lib_min" -le "$app_min" ] ||
    fail "library minSdk ($lib_min) must be set and not above the app's ($app_min)"

if [ "$problems" != 0 ]; then
    echo "android module: $problems problem(s)" >&2
    exit 1
fi
echo "android module: $n_paths paths exist; ABIs $(sed 's/=.*//' <<<"$expected" | tr '\n' ' ')match their installed Rust targets; 16 KB pages; profile $profile; consumer rules referenced"
