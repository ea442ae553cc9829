pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "tapemu-demo"
include(":app")
// The io.tapemu library module (Java API + libtapemu_jni.so + consumer keep rules).
include(":tapemu")
project(":tapemu").projectDir = file("../jni-bindings/android")
