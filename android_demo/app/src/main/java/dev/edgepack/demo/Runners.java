package dev.edgepack.demo;

import dev.edgepack.demo.core.Manifest;
import dev.edgepack.demo.core.ModelRunner;

/** Opens an artifact with the runtime its manifest entry names. */
final class Runners {
    private Runners() {}

    /** Big cores of a phone; edgepack's android-arm64 profile also uses 4. */
    static int threads() {
        return Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));
    }

    static ModelRunner open(EdgepackAssets assets, Manifest.Artifact artifact) throws Exception {
        if (artifact.isOnnxRuntime()) {
            return new OrtRunner(assets.bytes(artifact.file), artifact, threads());
        }
        if (artifact.isLiteRt()) {
            return new LiteRtRunner(assets.map(artifact.file), artifact, threads());
        }
        throw new IllegalArgumentException(artifact.file + " needs runtime '" + artifact.runtime + "' ("
                + artifact.androidLibrary + "); this app bundles onnxruntime and LiteRT");
    }
}
