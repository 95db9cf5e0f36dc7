package dev.edgepack.demo.core;

import static dev.edgepack.demo.core.ManifestKeys.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * edgepack's golden.json: for a few held-out pictures, the image file, the float tensor edgepack's
 * preprocessing made of it, and per artifact the buffer the artifact consumed, its raw outputs,
 * the dequantised scores, the top-1 class and the tolerance a device's run may differ by.
 */
public final class Golden {
    public final List<Case> cases;
    private final Map<String, ArtifactGolden> artifacts;

    private Golden(List<Case> cases, Map<String, ArtifactGolden> artifacts) {
        this.cases = cases;
        this.artifacts = artifacts;
    }

    /** A tensor as golden.json stores it: flat data in row-major order. */
    public static final class GoldenTensor {
        public final String name;
        private final int[] shape;
        public final DType dtype;
        private final double[] data;

        GoldenTensor(String name, int[] shape, DType dtype, double[] data) {
            this.name = name;
            this.shape = shape;
            this.dtype = dtype;
            this.data = data;
        }

        public int[] shape() {
            return shape.clone();
        }

        public double[] data() {
            return data.clone();
        }

        public int size() {
            return data.length;
        }

        /** The data as a raw buffer of its dtype (native order, position 0): what a runtime returned. */
        public ByteBuffer toBuffer() {
            ByteBuffer b = ByteBuffer.allocateDirect(data.length * dtype.bytes).order(ByteOrder.nativeOrder());
            for (double v : data) {
                switch (dtype) {
                    case FLOAT32: b.putFloat((float) v); break;
                    case FLOAT16: b.putShort(Half.fromFloat((float) v)); break;
                    case FLOAT64: b.putDouble(v); break;
                    case INT8: case UINT8: case BOOL: b.put((byte) (long) v); break;
                    case INT16: b.putShort((short) (long) v); break;
                    case INT32: b.putInt((int) (long) v); break;
                    case INT64: b.putLong((long) v); break;
                    default: throw new IllegalStateException(dtype.toString());
                }
            }
            ((java.nio.Buffer) b).rewind();
            return b;
        }
    }

    /** One golden picture. */
    public static final class Case {
        /** The image file name in the assets, or null for models that do not take pictures. */
        public final String image;
        /** The ground-truth class, or null. */
        public final Integer label;
        /** The source-side inputs: for image models, the float tensor edgepack's preprocessing made. */
        public final List<GoldenTensor> inputs;

        Case(String image, Integer label, List<GoldenTensor> inputs) {
            this.image = image;
            this.label = label;
            this.inputs = inputs;
        }
    }

    /** What one artifact consumed and returned on one case. */
    public static final class Result {
        public final List<GoldenTensor> inputs;
        public final List<GoldenTensor> outputs;
        private final double[] scores;
        public final int top1;

        Result(List<GoldenTensor> inputs, List<GoldenTensor> outputs, double[] scores, int top1) {
            this.inputs = inputs;
            this.outputs = outputs;
            this.scores = scores;
            this.top1 = top1;
        }

        public double[] scores() {
            return scores.clone();
        }
    }

    /** The golden results of one artifact file. */
    public static final class ArtifactGolden {
        public final String file;
        /** How far a device's scores may be from the golden scores. */
        public final double maxAbs;
        /** One per case, in case order. */
        public final List<Result> results;

        ArtifactGolden(String file, double maxAbs, List<Result> results) {
            this.file = file;
            this.maxAbs = maxAbs;
            this.results = results;
        }
    }

    public static Golden parse(String json) {
        String where = "golden vectors";
        JSONObject root = Json.parse(json, where);
        List<Case> cases = new ArrayList<>();
        JSONArray cs = Json.array(root, G_CASES, where);
        for (int i = 0; i < cs.length(); i++) {
            String w = where + "." + G_CASES + "[" + i + "]";
            JSONObject c = Json.objectAt(cs, i, where + "." + G_CASES);
            Integer label = c.isNull(G_CASE_LABEL) ? null : (int) Json.number(c, G_CASE_LABEL, w);
            cases.add(new Case(Json.optString(c, G_CASE_IMAGE), label, tensors(Json.array(c, G_CASE_INPUTS, w), w + ".inputs")));
        }
        Map<String, ArtifactGolden> arts = new LinkedHashMap<>();
        JSONArray as = Json.array(root, G_ARTIFACTS, where);
        for (int i = 0; i < as.length(); i++) {
            String w = where + "." + G_ARTIFACTS + "[" + i + "]";
            JSONObject a = Json.objectAt(as, i, where + "." + G_ARTIFACTS);
            JSONArray rs = Json.array(a, G_ART_RESULTS, w);
            List<Result> results = new ArrayList<>();
            for (int j = 0; j < rs.length(); j++) {
                String wr = w + ".results[" + j + "]";
                JSONObject r = Json.objectAt(rs, j, w + ".results");
                results.add(new Result(tensors(Json.array(r, G_RES_INPUTS, wr), wr + ".inputs"),
                        tensors(Json.array(r, G_RES_OUTPUTS, wr), wr + ".outputs"),
                        Json.doubles(Json.array(r, G_RES_SCORES, wr), wr + ".scores"),
                        (int) Json.number(r, G_RES_TOP1, wr)));
            }
            if (results.size() != cases.size()) {
                throw new ManifestException(w + " has " + results.size() + " results for " + cases.size() + " cases");
            }
            String file = Json.string(a, G_ART_FILE, w);
            double tol = Json.number(Json.object(a, G_ART_TOLERANCE, w), G_TOL_MAX_ABS, w + ".tolerance");
            arts.put(file, new ArtifactGolden(file, tol, Collections.unmodifiableList(results)));
        }
        return new Golden(Collections.unmodifiableList(cases), arts);
    }

    private static List<GoldenTensor> tensors(JSONArray a, String where) {
        List<GoldenTensor> out = new ArrayList<>();
        for (int i = 0; i < a.length(); i++) {
            String w = where + "[" + i + "]";
            JSONObject t = Json.objectAt(a, i, where);
            out.add(new GoldenTensor(Json.string(t, T_NAME, w), Json.shape(Json.array(t, T_SHAPE, w), w + ".shape"),
                    DType.fromNumpy(Json.string(t, T_DTYPE, w)), Json.doubles(Json.array(t, T_DATA, w), w + ".data")));
        }
        return Collections.unmodifiableList(out);
    }

    /** The golden results of an artifact, or null when golden.json has none for it. */
    public ArtifactGolden forArtifact(String file) {
        return artifacts.get(file);
    }

    public List<String> artifactFiles() {
        return new ArrayList<>(artifacts.keySet());
    }
}
