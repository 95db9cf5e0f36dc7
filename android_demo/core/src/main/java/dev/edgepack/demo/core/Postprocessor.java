package dev.edgepack.demo.core;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Raw outputs -> scores (dequantised like edgepack) -> probabilities -> top-k with labels. */
public final class Postprocessor {
    private final Manifest manifest;
    private final TensorSpec scores;

    public Postprocessor(Manifest manifest, Manifest.Artifact artifact) {
        this.manifest = manifest;
        this.scores = artifact.scoreOutput();
    }

    /** The result of one run. */
    public static final class Classification {
        /** The dequantised scores of the score output: what golden.json calls "scores". */
        public final float[] scores;
        public final float[] probabilities;
        public final List<Prediction> top;

        Classification(float[] scores, float[] probabilities, List<Prediction> top) {
            this.scores = scores;
            this.probabilities = probabilities;
            this.top = top;
        }
    }

    /** Classify from the runner's raw outputs (the first output holds the scores). */
    public Classification classify(List<ByteBuffer> rawOutputs, int k) {
        if (rawOutputs.isEmpty()) {
            throw new IllegalArgumentException("the runner returned no outputs");
        }
        float[] s = dequantize(rawOutputs.get(0), scores);
        float[] p = probabilities(s);
        return new Classification(s, p, topK(s, p, k, manifest));
    }

    /**
     * The float value of every element, as edgepack's host runtimes compute them: float32 as is,
     * float16 widened, integers with quantisation {@code (float(q) - float(zp)) * float(scale)} in
     * float32 arithmetic, integers without quantisation cast.
     */
    public static float[] dequantize(ByteBuffer raw, TensorSpec spec) {
        double[] v = Buffers.values(raw, spec.dtype);
        float[] out = new float[v.length];
        Quantization q = spec.dtype.integer ? spec.quantization : null;
        for (int i = 0; i < v.length; i++) {
            if (q == null) {
                out[i] = (float) v[i];
            } else {
                out[i] = q.dequantize((long) v[i], q.count() == 1 ? 0 : i % q.count());
            }
        }
        return out;
    }

    /**
     * Probabilities for display: the scores themselves when they already are a distribution
     * (all in [0, 1], summing to 1), else their softmax (the scores are logits).
     */
    public static float[] probabilities(float[] s) {
        double sum = 0;
        boolean inRange = true;
        for (float v : s) {
            sum += v;
            inRange &= v >= 0 && v <= 1;
        }
        if (inRange && Math.abs(sum - 1) < 1e-3) {
            return s.clone();
        }
        return softmax(s);
    }

    /** Numerically stable softmax, accumulated in double. */
    public static float[] softmax(float[] s) {
        float[] out = new float[s.length];
        if (s.length == 0) {
            return out;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (float v : s) {
            max = Math.max(max, v);
        }
        double sum = 0;
        double[] e = new double[s.length];
        for (int i = 0; i < s.length; i++) {
            e[i] = Math.exp(s[i] - max);
            sum += e[i];
        }
        for (int i = 0; i < s.length; i++) {
            out[i] = (float) (e[i] / sum);
        }
        return out;
    }

    /** Index of the largest score; the first one on ties (like numpy's argmax). */
    public static int argmax(float[] s) {
        int best = 0;
        for (int i = 1; i < s.length; i++) {
            if (s[i] > s[best]) {
                best = i;
            }
        }
        return best;
    }

    /** The k best classes, best first (ties: lower index first), labelled from the manifest. */
    public static List<Prediction> topK(float[] scores, float[] probabilities, int k, Manifest manifest) {
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < scores.length; i++) {
            order.add(i);
        }
        Collections.sort(order, (a, b) -> scores[a] != scores[b] ? Float.compare(scores[b], scores[a]) : Integer.compare(a, b));
        List<Prediction> out = new ArrayList<>();
        for (int i = 0; i < Math.min(k, order.size()); i++) {
            int c = order.get(i);
            out.add(new Prediction(c, manifest.label(c), scores[c], probabilities[c]));
        }
        return out;
    }
}
