package dev.edgepack.demo.core;

import static dev.edgepack.demo.core.ManifestKeys.*;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * edgepack's manifest.json for one target's Android assets: labels, preprocessing, the artifacts
 * (file, runtime, I/O) and which one to use by default, and the golden-vector file name.
 */
public final class Manifest {
    public final String schemaVersion;
    public final String modelName;
    public final String target;
    /** Class names; empty when the calibration data had none. */
    public final List<String> labels;
    /** Null when the model does not take pictures. */
    public final PreprocessSpec preprocess;
    public final List<Artifact> artifacts;
    public final String defaultArtifactFile;
    /** File name of the golden vectors (golden.json), or null. */
    public final String goldenFile;

    private Manifest(String schemaVersion, String modelName, String target, List<String> labels, PreprocessSpec preprocess,
            List<Artifact> artifacts, String defaultArtifactFile, String goldenFile) {
        this.schemaVersion = schemaVersion;
        this.modelName = modelName;
        this.target = target;
        this.labels = labels;
        this.preprocess = preprocess;
        this.artifacts = artifacts;
        this.defaultArtifactFile = defaultArtifactFile;
        this.goldenFile = goldenFile;
    }

    /** One artifact file and how to run it. */
    public static final class Artifact {
        public final String file;
        public final String format;
        public final String precision;
        /** edgepack's runtime name: "onnxruntime", or one starting with "litert". */
        public final String runtime;
        /** The Gradle coordinate that runs it on Android, as edgepack says (may be null). */
        public final String androidLibrary;
        public final List<TensorSpec> inputs;
        public final List<TensorSpec> outputs;

        Artifact(String file, String format, String precision, String runtime, String androidLibrary,
                List<TensorSpec> inputs, List<TensorSpec> outputs) {
            this.file = file;
            this.format = format;
            this.precision = precision;
            this.runtime = runtime;
            this.androidLibrary = androidLibrary;
            this.inputs = inputs;
            this.outputs = outputs;
        }

        public boolean isLiteRt() {
            return runtime.startsWith("litert");
        }

        public boolean isOnnxRuntime() {
            return "onnxruntime".equals(runtime);
        }

        /** The image input (the first one). */
        public TensorSpec imageInput() {
            if (inputs.isEmpty()) {
                throw new ManifestException(file + " has no inputs in the manifest");
            }
            return inputs.get(0);
        }

        /** The output holding the class scores (the first one). */
        public TensorSpec scoreOutput() {
            if (outputs.isEmpty()) {
                throw new ManifestException(file + " has no outputs in the manifest");
            }
            return outputs.get(0);
        }

        /** A copy whose first input is {@code input} (the tests use it to simulate a mismatched manifest). */
        public Artifact withImageInput(TensorSpec input) {
            List<TensorSpec> in = new ArrayList<>(inputs);
            in.set(0, input);
            return new Artifact(file, format, precision, runtime, androidLibrary, Collections.unmodifiableList(in), outputs);
        }

        @Override
        public String toString() {
            return file + " (" + format + " " + precision + ", " + runtime + ")";
        }
    }

    public static Manifest parse(String json) {
        JSONObject root = Json.parse(json, MANIFEST_FILE);
        String where = MANIFEST_FILE;
        String schema = Json.optString(root, SCHEMA_VERSION);
        if (schema != null && !schema.split("\\.")[0].equals(SUPPORTED_SCHEMA_MAJOR)) {
            throw new ManifestException(where + ": schema_version " + schema + " is not supported (this app reads "
                    + SUPPORTED_SCHEMA_MAJOR + ".x); rebuild the app against this edgepack");
        }
        JSONObject model = Json.optObject(root, MODEL, where);
        String modelName = model == null ? null : Json.optString(model, MODEL_NAME);
        String target = Json.optString(root, TARGET);

        List<String> labels = new ArrayList<>();
        if (!root.isNull(LABELS)) {
            JSONArray a = Json.array(root, LABELS, where);
            for (int i = 0; i < a.length(); i++) {
                labels.add(a.optString(i));
            }
        }

        PreprocessSpec pp = null;
        JSONObject p = Json.optObject(root, PREPROCESS, where);
        if (p != null) {
            String w = where + "." + PREPROCESS;
            int[] size = Json.shape(Json.array(p, PP_SIZE, w), w + "." + PP_SIZE);
            if (size.length != 2) {
                throw new ManifestException(w + ".size must be [height, width]");
            }
            pp = new PreprocessSpec(size[0], size[1], Json.string(p, PP_LAYOUT, w), Json.string(p, PP_CHANNELS, w),
                    Json.number(p, PP_SCALE, w), Json.doubles(Json.array(p, PP_MEAN, w), w + ".mean"),
                    Json.doubles(Json.array(p, PP_STD, w), w + ".std"));
        }

        List<Artifact> artifacts = new ArrayList<>();
        JSONArray arts = Json.array(root, ARTIFACTS, where);
        for (int i = 0; i < arts.length(); i++) {
            String w = where + "." + ARTIFACTS + "[" + i + "]";
            JSONObject a = Json.objectAt(arts, i, where + "." + ARTIFACTS);
            artifacts.add(new Artifact(
                    Json.string(a, ART_FILE, w),
                    Json.string(a, ART_FORMAT, w),
                    Json.string(a, ART_PRECISION, w),
                    Json.string(a, ART_RUNTIME, w),
                    Json.optString(a, ART_ANDROID_LIBRARY),
                    tensors(Json.array(a, ART_INPUTS, w), w + "." + ART_INPUTS),
                    tensors(Json.array(a, ART_OUTPUTS, w), w + "." + ART_OUTPUTS)));
        }
        if (artifacts.isEmpty()) {
            throw new ManifestException(where + " lists no artifacts");
        }
        String def = Json.optString(root, DEFAULT_ARTIFACT);
        if (def == null) {
            def = artifacts.get(0).file;
        }
        Manifest m = new Manifest(schema, modelName, target, Collections.unmodifiableList(labels), pp,
                Collections.unmodifiableList(artifacts), def, Json.optString(root, GOLDEN));
        m.artifact(def); // the default must be one of the artifacts
        return m;
    }

    private static List<TensorSpec> tensors(JSONArray a, String where) {
        List<TensorSpec> out = new ArrayList<>();
        for (int i = 0; i < a.length(); i++) {
            String w = where + "[" + i + "]";
            JSONObject t = Json.objectAt(a, i, where);
            Quantization q = null;
            JSONObject qj = Json.optObject(t, IO_QUANTIZATION, w);
            if (qj != null) {
                String wq = w + "." + IO_QUANTIZATION;
                q = new Quantization(Json.doubles(Json.array(qj, Q_SCALE, wq), wq + ".scale"),
                        Json.longs(Json.array(qj, Q_ZERO_POINT, wq), wq + ".zero_point"));
            }
            String layout = Json.optString(t, IO_LAYOUT);
            if (layout != null) {
                PreprocessSpec.checkLayout(layout, w + ".layout");
            }
            out.add(new TensorSpec(Json.string(t, IO_NAME, w), Json.shape(Json.array(t, IO_SHAPE, w), w + ".shape"),
                    DType.fromNumpy(Json.string(t, IO_DTYPE, w)), layout, q));
        }
        return Collections.unmodifiableList(out);
    }

    /** The artifact with this file name (as the manifest lists it). */
    public Artifact artifact(String file) {
        for (Artifact a : artifacts) {
            if (a.file.equals(file)) {
                return a;
            }
        }
        List<String> names = new ArrayList<>();
        for (Artifact a : artifacts) {
            names.add(a.file);
        }
        throw new ManifestException("no artifact '" + file + "' in the manifest; it lists " + names);
    }

    /** The artifact edgepack picked for this target (the smallest that passed parity). */
    public Artifact defaultArtifact() {
        return artifact(defaultArtifactFile);
    }

    /** {@code file} if given, else the default artifact. */
    public Artifact choose(String file) {
        return file == null || file.isEmpty() ? defaultArtifact() : artifact(file);
    }

    /** The label of class {@code index}, or "class N" when the manifest has no (or too few) labels. */
    public String label(int index) {
        return index >= 0 && index < labels.size() ? labels.get(index) : "class " + index;
    }

    /** The layout of the artifact's image input: its own, else the preprocessing's. */
    public String inputLayout(Artifact a) {
        String l = a.imageInput().layout;
        if (l != null) {
            return l;
        }
        if (preprocess == null) {
            throw new ManifestException(a.file + ": the manifest gives no layout for its input and no preprocess");
        }
        return preprocess.layout;
    }

    /** A copy with other preprocessing (the tests use it to simulate a mismatched manifest). */
    public Manifest withPreprocess(PreprocessSpec pp) {
        return new Manifest(schemaVersion, modelName, target, labels, pp, artifacts, defaultArtifactFile, goldenFile);
    }
}
