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
    }

    buildTypes {
        getByName("release") {
            // Shrunk and obfuscated like a shipped app: the library's consumer rules keep what
            // its native code calls back.
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"))
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

dependencies {
    // The Java API and libtapemu_jni.so for every ABI (jni-bindings/android).
    implementation(project(":tapemu"))
}
