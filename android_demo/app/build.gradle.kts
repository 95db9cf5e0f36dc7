plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "dev.edgepack.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.edgepack.demo"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    androidResources {
        // Keep models stored uncompressed in the APK so they can be memory-mapped (AssetManager.openFd).
        noCompress += listOf("tflite", "ort")
    }
}

dependencies {
    implementation(project(":core"))
    // the runtimes edgepack's manifest names in artifacts[].android_library
    implementation(libs.onnxruntime.android)
    implementation(libs.litert)
}
