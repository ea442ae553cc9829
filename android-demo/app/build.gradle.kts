plugins {
    id("com.android.application")
}

android {
    namespace = "io.tapemu.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "io.tapemu.demo"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1"
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    sourceSets {
        getByName("main") {
            // The Java API is used as is, from its one copy in jni-bindings/java.
            java.srcDir("../../jni-bindings/java")
            // libtapemu_jni.so per ABI, built by cargo-ndk (see README.md).
            jniLibs.srcDir("src/main/jniLibs")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}
