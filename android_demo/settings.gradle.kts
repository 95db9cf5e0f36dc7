// The edgepack Android demo: `:app` (the Android app) and `:core` (plain Java 17, also tested on
// the JVM by core/run_tests.sh and tests/android/test_java_core.py).
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

rootProject.name = "edgepack-android-demo"
include(":app", ":core")
