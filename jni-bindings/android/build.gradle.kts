// The io.tapemu Android library (AAR): the Java API from ../java, libtapemu_jni.so for each
// ABI built by cargo-ndk, and the keep rules an app's R8 needs (../consumer-rules.pro). It
// builds inside android-demo (whose settings include this directory as :tapemu); check.sh
// checks what can be checked of it without the SDK.
plugins {
    id("com.android.library")
}

// Each ABI the AAR ships and the Rust target cargo-ndk builds for it (scripts/test.sh
// installs and type-checks the same four targets).
val rustTargets = linkedMapOf(
    "arm64-v8a" to "aarch64-linux-android",
    "armeabi-v7a" to "armv7-linux-androideabi",
    "x86_64" to "x86_64-linux-android",
    "x86" to "i686-linux-android",
)
val minSdkVersion = 24
val repoRoot = file("../..")
// [profile.android-release] in the workspace Cargo.toml: release, no debug info, stripped.
val cargoProfile = "android-release"
// Google Play requires 16 KB-aligned ELF segments for apps targeting Android 15+. NDK r28+
// and recent cargo-ndk do this by default; the flag makes it hold with older ones too.
val pageSizeFlag = "-C link-arg=-Wl,-z,max-page-size=16384"
val jniLibsDir = layout.buildDirectory.dir("cargo-ndk/jniLibs").get().asFile

android {
    namespace = "io.tapemu"
    compileSdk = 34

    defaultConfig {
        minSdk = minSdkVersion
        // Keeps what native code calls back (TapEmulator.onNative*) and the native methods.
        consumerProguardFiles("../consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            // The Java API is used as is, from its one copy; src/main/java adds the classes
            // that need the Android SDK (AndroidFds).
            java.srcDir("../java")
            java.srcDir("src/main/java")
            // <ABI>/libtapemu_jni.so, written by the cargoNdk task below.
            jniLibs.srcDir(jniLibsDir)
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

// libtapemu_jni.so for every ABI: cargo ndk build --profile android-release -p tapemu-jni.
val cargoNdk by tasks.registering(Exec::class) {
    description = "Builds libtapemu_jni.so for ${rustTargets.keys} with cargo-ndk"
    workingDir = repoRoot
    inputs.files(fileTree(repoRoot) {
        include("Cargo.toml", "Cargo.lock", "core/src/**", "core/Cargo.toml",
            "jni-bindings/Cargo.toml", "jni-bindings/src/**")
    })
    outputs.dir(jniLibsDir)
    // RUSTFLAGS reaches every target crate with any cargo-ndk version (older ones fold it into
    // CARGO_ENCODED_RUSTFLAGS, which would hide [target.*] rustflags from .cargo/config.toml).
    environment("RUSTFLAGS", listOfNotNull(System.getenv("RUSTFLAGS"), pageSizeFlag).joinToString(" "))
    val args = mutableListOf("cargo", "ndk")
    rustTargets.keys.forEach { abi -> args += listOf("-t", abi) }
    args += listOf("--platform", minSdkVersion.toString(), "-o", jniLibsDir.path,
        "build", "--profile", cargoProfile, "-p", "tapemu-jni")
    commandLine(args)
}

tasks.named("preBuild") {
    dependsOn(cargoNdk)
}
