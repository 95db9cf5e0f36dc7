package dev.edgepack.demo.core;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * The on-device self-check: proves that this app computes what edgepack validated.
 *
 * <p>For every golden case, in order: decode the golden picture; (1) preprocess it and compare
 * the float tensor with the one edgepack's Python preprocessing made (within 1e-6); (2) compare
 * the artifact's input buffer (its dtype, layout and quantisation) with the buffer the artifact
 * consumed on the host (integers exactly, floats within 1e-6); (3) run the runner on that buffer;
 * (4) dequantise its first output and compare with the golden scores within the artifact's
 * tolerance (golden.json "tolerance.max_abs"). Every case runs once, in golden order.
 */
public final class GoldenCheck {
    /** Float tensors and float input buffers must match edgepack's within this. */
    public static final double FLOAT_INPUT_TOLERANCE = 1e-6;

    /** The checks, in the order they run. */
    public enum Check {
        GOLDEN("golden vectors for this artifact"),
        IMAGE("golden image"),
        PREPROCESS("preprocessing: the float tensor vs edgepack's preprocessing"),
        INPUT("input buffer: the artifact's dtype/layout/quantisation vs the buffer it consumed in edgepack"),
        RUN("running the model"),
        OUTPUT("outputs: count and size"),
        SCORES("scores vs edgepack's golden scores within the artifact's tolerance");

        public final String description;

        Check(String description) {
            this.description = description;
        }
    }

    /** One failed check. */
    public static final class Failure {
        public final Check check;
        /** The golden case, or -1 when the failure is not about one case. */
        public final int caseIndex;
        public final String message;

        Failure(Check check, int caseIndex, String message) {
            this.check = check;
            this.caseIndex = caseIndex;
            this.message = message;
        }

        @Override
        public String toString() {
            return check.name().toLowerCase(Locale.ROOT) + (caseIndex >= 0 ? " (case " + caseIndex + ")" : "") + ": " + message;
        }
    }

    /** What one golden case measured (NaN where the check did not get that far). */
    public static final class CaseResult {
        public final int index;
        public final String image;
        public double preprocessError = Double.NaN;
        public double inputError = Double.NaN;
        public double scoreError = Double.NaN;
        public int top1 = -1;
        public int goldenTop1 = -1;
        public long runNanos = -1;

        CaseResult(int index, String image) {
            this.index = index;
            this.image = image;
        }
    }

    /** The verdict. */
    public static final class Report {
        public final String artifactFile;
        public final String runtime;
        public final double tolerance;
        public final boolean integerInput;
        public final List<CaseResult> cases;
        public final List<Failure> failures;

        Report(String artifactFile, String runtime, double tolerance, boolean integerInput, List<CaseResult> cases, List<Failure> failures) {
            this.artifactFile = artifactFile;
            this.runtime = runtime;
            this.tolerance = tolerance;
            this.integerInput = integerInput;
            this.cases = Collections.unmodifiableList(cases);
            this.failures = Collections.unmodifiableList(failures);
        }

        public boolean passed() {
            return failures.isEmpty() && !cases.isEmpty();
        }

        /** The first check that failed, or null. */
        public Check failedCheck() {
            return failures.isEmpty() ? null : failures.get(0).check;
        }

        public double worstPreprocessError() {
            return worst(0);
        }

        public double worstInputError() {
            return worst(1);
        }

        public double worstScoreError() {
            return worst(2);
        }

        private double worst(int which) {
            double w = Double.NaN;
            for (CaseResult c : cases) {
                double v = which == 0 ? c.preprocessError : which == 1 ? c.inputError : c.scoreError;
                if (!Double.isNaN(v) && (Double.isNaN(w) || v > w)) {
                    w = v;
                }
            }
            return w;
        }

        /** One paragraph for the screen or the log. */
        public String summary() {
            StringBuilder s = new StringBuilder();
            s.append(passed() ? "PASS " : "FAIL ").append(artifactFile).append(" (").append(runtime).append("), ")
                    .append(cases.size()).append(" golden case(s)");
            if (!failures.isEmpty()) {
                Failure f = failures.get(0);
                s.append("\nfailed check: ").append(f.check.description).append("\n  ").append(f);
                if (failures.size() > 1) {
                    s.append("\n  (and ").append(failures.size() - 1).append(" more failure(s))");
                }
            }
            s.append(String.format(Locale.ROOT, "\npreprocessing: worst |Δ| %s (limit %.0e)", fmt(worstPreprocessError()), FLOAT_INPUT_TOLERANCE));
            s.append(String.format(Locale.ROOT, "\ninput buffer: worst |Δ| %s (%s)", fmt(worstInputError()),
                    integerInput ? "integers: must be equal" : String.format(Locale.ROOT, "limit %.0e", FLOAT_INPUT_TOLERANCE)));
            s.append(String.format(Locale.ROOT, "\nscores: worst |Δ| %s (limit %.3g)", fmt(worstScoreError()), tolerance));
            return s.toString();
        }

        private static String fmt(double v) {
            return Double.isNaN(v) ? "n/a" : v == 0 ? "0" : String.format(Locale.ROOT, "%.3g", v);
        }
    }

    /** Where two flat arrays differ most. */
    static final class Diff {
        double maxAbs;
        int worstIndex = -1;
        double expected;
        double actual;
        int differing;

        static Diff of(double[] expected, double[] actual, double tolerance) {
            Diff d = new Diff();
            for (int i = 0; i < expected.length; i++) {
                double e = Math.abs(expected[i] - actual[i]);
                if (Double.isNaN(e)) {
                    e = Double.POSITIVE_INFINITY;
                }
                if (e > tolerance) {
                    d.differing++;
                }
                if (e > d.maxAbs || d.worstIndex < 0) {
                    d.maxAbs = e;
                    d.worstIndex = i;
                    d.expected = expected[i];
                    d.actual = actual[i];
                }
            }
            return d;
        }

        String describe(int n) {
            return String.format(Locale.ROOT, "%d of %d elements differ; worst |Δ| %.6g at element %d (edgepack %.9g, app %.9g)",
                    differing, n, maxAbs, worstIndex, expected, actual);
        }
    }

    private final Manifest manifest;
    private final Manifest.Artifact artifact;
    private final Golden golden;

    public GoldenCheck(Manifest manifest, Manifest.Artifact artifact, Golden golden) {
        this.manifest = manifest;
        this.artifact = artifact;
        this.golden = golden;
    }

    public Report run(ImageSource images, ModelRunner runner) {
        List<CaseResult> results = new ArrayList<>();
        List<Failure> failures = new ArrayList<>();
        Golden.ArtifactGolden ag = golden.forArtifact(artifact.file);
        TensorSpec in = artifact.imageInput();
        boolean integerInput = in.dtype.integer;
        if (ag == null) {
            failures.add(new Failure(Check.GOLDEN, -1, "golden.json has no results for " + artifact.file + "; it has " + golden.artifactFiles()));
            return new Report(artifact.file, artifact.runtime, Double.NaN, integerInput, results, failures);
        }
        if (golden.cases.isEmpty()) {
            failures.add(new Failure(Check.GOLDEN, -1, "golden.json has no cases"));
            return new Report(artifact.file, artifact.runtime, ag.maxAbs, integerInput, results, failures);
        }
        Preprocessor pre;
        try {
            pre = new Preprocessor(manifest, artifact);
        } catch (ManifestException e) {
            failures.add(new Failure(Check.PREPROCESS, -1, e.getMessage()));
            return new Report(artifact.file, artifact.runtime, ag.maxAbs, integerInput, results, failures);
        }
        for (int i = 0; i < golden.cases.size(); i++) {
            Golden.Case gc = golden.cases.get(i);
            Golden.Result gr = ag.results.get(i);
            CaseResult cr = new CaseResult(i, gc.image);
            cr.goldenTop1 = gr.top1;
            results.add(cr);
            if (gc.image == null || gc.inputs.isEmpty() || gr.inputs.isEmpty()) {
                failures.add(new Failure(Check.GOLDEN, i, "golden case has no image and input tensor (the model does not take pictures)"));
                continue;
            }
            Pixels px;
            try {
                px = images.load(gc.image);
                pre.channelValues(px); // checks the size
            } catch (IOException | RuntimeException e) {
                failures.add(new Failure(Check.IMAGE, i, gc.image + ": " + e.getMessage()));
                continue;
            }

            // (1) preprocessing parity: the float tensor in edgepack's layout
            float[] tensor = pre.tensor(px);
            double[] expectTensor = gc.inputs.get(0).data();
            if (expectTensor.length != tensor.length) {
                failures.add(new Failure(Check.PREPROCESS, i, "the app makes " + tensor.length + " values, edgepack made " + expectTensor.length));
            } else {
                Diff d = Diff.of(expectTensor, toDoubles(tensor), FLOAT_INPUT_TOLERANCE);
                cr.preprocessError = d.maxAbs;
                if (d.maxAbs > FLOAT_INPUT_TOLERANCE) {
                    failures.add(new Failure(Check.PREPROCESS, i, gc.image + ": " + d.describe(tensor.length)));
                }
            }

            // (2) the artifact's own input buffer
            ByteBuffer buf = pre.inputBuffer(px);
            Golden.GoldenTensor expectIn = gr.inputs.get(0);
            double[] actualIn = Buffers.values(buf, in.dtype);
            if (expectIn.dtype != in.dtype) {
                failures.add(new Failure(Check.INPUT, i, "the manifest says the input is " + in.dtype + ", the artifact consumed " + expectIn.dtype));
            } else if (expectIn.size() != actualIn.length) {
                failures.add(new Failure(Check.INPUT, i, "the app makes " + actualIn.length + " elements, the artifact consumed " + expectIn.size()));
            } else {
                Diff d = Diff.of(expectIn.data(), actualIn, integerInput ? 0 : FLOAT_INPUT_TOLERANCE);
                cr.inputError = d.maxAbs;
                if (d.differing > 0) {
                    failures.add(new Failure(Check.INPUT, i, gc.image + " (" + in.dtype + ", " + pre.inputLayout() + "): " + d.describe(actualIn.length)));
                }
            }

            // (3) run, (4) scores
            List<ByteBuffer> outs;
            try {
                long t0 = System.nanoTime();
                outs = runner.run(buf);
                cr.runNanos = System.nanoTime() - t0;
            } catch (Exception e) {
                failures.add(new Failure(Check.RUN, i, e.getClass().getSimpleName() + ": " + e.getMessage()));
                continue;
            }
            if (outs == null || outs.size() < artifact.outputs.size()) {
                failures.add(new Failure(Check.OUTPUT, i, "the runner returned " + (outs == null ? 0 : outs.size())
                        + " output(s); the manifest lists " + artifact.outputs.size()));
                continue;
            }
            float[] scores = Postprocessor.dequantize(outs.get(0), artifact.scoreOutput());
            double[] expectScores = gr.scores();
            if (scores.length != expectScores.length) {
                failures.add(new Failure(Check.OUTPUT, i, "output '" + artifact.scoreOutput().name + "' has " + scores.length
                        + " values, edgepack's golden scores " + expectScores.length));
                continue;
            }
            Diff d = Diff.of(expectScores, toDoubles(scores), ag.maxAbs);
            cr.scoreError = d.maxAbs;
            cr.top1 = Postprocessor.argmax(scores);
            if (d.differing > 0) {
                failures.add(new Failure(Check.SCORES, i, String.format(Locale.ROOT, "%s: %s; tolerance %.3g",
                        gc.image, d.describe(scores.length), ag.maxAbs)));
            }
        }
        return new Report(artifact.file, artifact.runtime, ag.maxAbs, integerInput, results, failures);
    }

    static double[] toDoubles(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }
}
