// Root build file: plugin versions come from gradle/libs.versions.toml; modules configure themselves.
plugins {
    alias(libs.plugins.android.application) apply false
}
