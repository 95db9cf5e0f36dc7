// Plain Java 17 library: no android.* imports, only org.json (which Android ships).
// The same sources are compiled and tested without Gradle by core/run_tests.sh.
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

tasks.withType<JavaCompile>().configureEach {
    options.release.set(17)
    options.encoding = "UTF-8"
}

dependencies {
    // compile against Android's org.json; on the device the platform provides it
    compileOnly(libs.android.json)
    testImplementation(libs.android.json)
    testImplementation(libs.junit)
}

tasks.test {
    // The tests run against asset folders edgepack wrote (never hand-written fixtures):
    //   ./gradlew :core:test -PedgepackAssets=/abs/digits:/abs/rgb
    // Default: the app's own assets. LayoutMismatchTest also needs a 3-channel model's folder.
    val assets = providers.gradleProperty("edgepackAssets")
        .orElse(rootProject.layout.projectDirectory.dir("app/src/main/assets/edgepack").asFile.absolutePath)
    systemProperty("edgepack.assets", assets.get())
    systemProperty("java.awt.headless", "true")
    outputs.upToDateWhen { false } // the assets live outside Gradle's view
}
