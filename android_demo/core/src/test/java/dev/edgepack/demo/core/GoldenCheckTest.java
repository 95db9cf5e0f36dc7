package dev.edgepack.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.junit.runners.Parameterized;
import org.junit.runners.Parameterized.Parameters;

/**
 * The self-check's verdicts, with a runner that replays edgepack's recorded outputs (no model runs
 * on the JVM): PASS when nothing is wrong, FAIL naming the check when something is.
 */
@RunWith(Parameterized.class)
public class GoldenCheckTest {
    @Parameters(name = "{0}")
    public static Collection<Object[]> folders() throws IOException {
        return AssetFolders.parameters();
    }

    private final AssetFolders.Loaded a;

    public GoldenCheckTest(String name, AssetFolders.Loaded loaded) {
        this.a = loaded;
    }

    private GoldenCheck.Report check(Manifest m, Manifest.Artifact art, ModelRunner runner) {
        GoldenCheck.Report r = new GoldenCheck(m, art, a.golden).run(a.images, runner);
        assertNotNull(r.summary());
        return r;
    }

    private ReplayRunner replay(Manifest.Artifact art) {
        return new ReplayRunner(a.golden.forArtifact(art.file));
    }

    private static void assertFails(GoldenCheck.Report r, GoldenCheck.Check expected) {
        assertFalse("must FAIL:\n" + r.summary(), r.passed());
        assertEquals(r.summary(), expected, r.failedCheck());
        assertTrue(r.summary(), r.summary().startsWith("FAIL "));
        assertTrue(r.summary(), r.summary().contains("failed check: " + expected.description));
    }

    @Test
    public void replayingTheGoldenOutputsPassesForEveryArtifact() {
        for (Manifest.Artifact art : a.manifest.artifacts) {
            ReplayRunner runner = replay(art);
            GoldenCheck.Report r = check(a.manifest, art, runner);
            assertTrue(r.summary(), r.passed());
            assertTrue(r.summary(), r.summary().startsWith("PASS " + art.file));
            assertEquals(a.golden.cases.size(), r.cases.size());
            assertEquals("the runner ran once per case", a.golden.cases.size(), runner.inputsSeen.size());
            assertTrue(r.worstPreprocessError() <= GoldenCheck.FLOAT_INPUT_TOLERANCE);
            assertTrue(r.worstInputError() <= (r.integerInput ? 0 : GoldenCheck.FLOAT_INPUT_TOLERANCE));
            assertTrue(r.worstScoreError() <= 1e-6);
            for (GoldenCheck.CaseResult c : r.cases) {
                assertEquals(c.goldenTop1, c.top1);
            }
        }
    }

    /** A manifest whose mean differs from the one edgepack's Python used. */
    @Test
    public void aMeanThatDiffersFromPythonsFailsThePreprocessingCheck() {
        PreprocessSpec pp = a.manifest.preprocess;
        double[] mean = pp.mean();
        for (int i = 0; i < mean.length; i++) {
            mean[i] += 0.05;
        }
        Manifest wrong = a.manifest.withPreprocess(pp.withNormalization(mean, pp.std()));
        Manifest.Artifact art = wrong.defaultArtifact();
        GoldenCheck.Report r = check(wrong, art, replay(art));
        assertFails(r, GoldenCheck.Check.PREPROCESS);
        assertTrue(r.summary(), r.worstPreprocessError() > 0.01);
    }

    /** A manifest whose std differs from the one edgepack's Python used. */
    @Test
    public void aStdThatDiffersFromPythonsFailsThePreprocessingCheck() {
        PreprocessSpec pp = a.manifest.preprocess;
        double[] std = pp.std();
        for (int i = 0; i < std.length; i++) {
            std[i] *= 1.25;
        }
        Manifest wrong = a.manifest.withPreprocess(pp.withNormalization(pp.mean(), std));
        for (Manifest.Artifact art : wrong.artifacts) {
            assertFails(check(wrong, art, replay(art)), GoldenCheck.Check.PREPROCESS);
        }
    }

    /** Adds {@code delta} (in score units) to the best class's raw output. */
    private static ModelRunner perturbed(ReplayRunner replay, TensorSpec spec, double delta) {
        return input -> {
            List<ByteBuffer> outs = replay.run(input);
            ByteBuffer raw = outs.get(0);
            float[] s = Postprocessor.dequantize(raw, spec);
            int i = Postprocessor.argmax(s);
            ByteBuffer b = raw.duplicate().order(ByteOrder.nativeOrder());
            switch (spec.dtype) {
                case FLOAT32: b.putFloat(4 * i, (float) (b.getFloat(4 * i) + delta)); break;
                case FLOAT16: b.putShort(2 * i, Half.fromFloat((float) (Half.toFloat(b.getShort(2 * i)) + delta))); break;
                case INT8: case UINT8: {
                    long steps = (long) Math.ceil(Math.abs(delta) / spec.quantization.scale(0)) * (delta < 0 ? -1 : 1);
                    b.put(i, (byte) (b.get(i) - steps)); // downwards, away from the clamp at the top
                    break;
                }
                default: throw new AssertionError("no perturbation for " + spec.dtype);
            }
            return outs;
        };
    }

    @Test
    public void scoresBeyondTheToleranceFailTheScoresCheck() {
        for (Manifest.Artifact art : a.manifest.artifacts) {
            double tol = a.golden.forArtifact(art.file).maxAbs;
            GoldenCheck.Report r = check(a.manifest, art, perturbed(replay(art), art.scoreOutput(), 2 * tol));
            assertFails(r, GoldenCheck.Check.SCORES);
            assertTrue(r.summary(), r.worstScoreError() > tol);
            assertTrue("input checks still passed", r.worstPreprocessError() <= GoldenCheck.FLOAT_INPUT_TOLERANCE);
        }
    }

    @Test
    public void scoresWithinTheTolerancePass() {
        for (Manifest.Artifact art : a.manifest.artifacts) {
            TensorSpec spec = art.scoreOutput();
            if (spec.dtype.integer) {
                continue; // integer scores move in whole quanta: no smaller step exists
            }
            double tol = a.golden.forArtifact(art.file).maxAbs;
            GoldenCheck.Report r = check(a.manifest, art, perturbed(replay(art), spec, 0.5 * tol));
            assertTrue(r.summary(), r.passed());
            assertTrue(r.summary(), r.worstScoreError() > 0.25 * tol);
        }
    }

    @Test
    public void runnerErrorsAndWrongOutputsFail() {
        Manifest.Artifact art = a.manifest.defaultArtifact();
        assertFails(check(a.manifest, art, input -> {
            throw new IllegalStateException("session closed");
        }), GoldenCheck.Check.RUN);
        assertFails(check(a.manifest, art, input -> Collections.<ByteBuffer>emptyList()), GoldenCheck.Check.OUTPUT);
        ReplayRunner replay = replay(art);
        assertFails(check(a.manifest, art, input -> {
            List<ByteBuffer> outs = new ArrayList<>(replay.run(input));
            ByteBuffer shorter = outs.get(0).duplicate().order(ByteOrder.nativeOrder());
            shorter.limit(shorter.limit() - art.scoreOutput().dtype.bytes);
            outs.set(0, shorter);
            return outs;
        }), GoldenCheck.Check.OUTPUT);
    }

    @Test
    public void aMissingOrWronglySizedGoldenImageFails() {
        Manifest.Artifact art = a.manifest.defaultArtifact();
        GoldenCheck missing = new GoldenCheck(a.manifest, art, a.golden);
        assertFails(missing.run(name -> {
            throw new IOException("no such asset");
        }, replay(art)), GoldenCheck.Check.IMAGE);
        assertFails(missing.run(name -> new Pixels(1, 1, new int[] {0xff000000}), replay(art)), GoldenCheck.Check.IMAGE);
    }
}
