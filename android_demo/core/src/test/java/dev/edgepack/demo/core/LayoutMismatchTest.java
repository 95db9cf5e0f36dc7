package dev.edgepack.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import java.io.File;
import java.io.IOException;
import org.junit.Test;

/**
 * Layout confusion is caught. It needs a 3-channel model: with one channel, NCHW and NHWC are the
 * same bytes (the last test shows it), so the digits model alone cannot catch it.
 */
public class LayoutMismatchTest {

    /**
     * The artifact's input described in the other layout (NHWC [1, H, W, C] for an artifact that
     * consumed NCHW, and the reverse), as a manifest that got the layout wrong would say.
     */
    private static Manifest.Artifact claimingTheOtherLayout(Manifest m, Manifest.Artifact art) {
        PreprocessSpec pp = m.preprocess;
        TensorSpec in = art.imageInput();
        int c = pp.channelCount();
        boolean nchw = "nchw".equals(m.inputLayout(art));
        int[] shape = nchw ? new int[] {1, pp.height, pp.width, c} : new int[] {1, c, pp.height, pp.width};
        return art.withImageInput(in.with(shape, nchw ? "nhwc" : "nchw", in.dtype, in.quantization));
    }

    /**
     * NHWC data read as NCHW (or the reverse): the buffer the app builds from a manifest with the
     * wrong layout is not the one the artifact consumed. The input buffer check fails; the float
     * tensor itself (edgepack's preprocessing) still matches.
     */
    @Test
    public void nhwcReadAsNchwFailsTheInputBufferCheck() throws IOException {
        AssetFolders.Loaded a = AssetFolders.threeChannel();
        for (Manifest.Artifact original : a.manifest.artifacts) {
            Manifest.Artifact art = claimingTheOtherLayout(a.manifest, original);
            GoldenCheck.Report r = new GoldenCheck(a.manifest, art, a.golden).run(a.images, new ReplayRunner(a.golden.forArtifact(art.file)));
            assertFalse(r.summary(), r.passed());
            assertEquals(r.summary(), GoldenCheck.Check.INPUT, r.failedCheck());
            assertTrue(r.summary(), r.summary().contains("failed check: " + GoldenCheck.Check.INPUT.description));
            assertTrue("the float tensor itself is right", r.worstPreprocessError() <= GoldenCheck.FLOAT_INPUT_TOLERANCE);
            assertTrue(r.summary(), r.worstInputError() > 0.01);
        }
    }

    /** A manifest whose preprocess.layout says NHWC while edgepack's tensor was NCHW. */
    @Test
    public void aPreprocessLayoutThatDiffersFromPythonsFailsThePreprocessingCheck() throws IOException {
        AssetFolders.Loaded a = AssetFolders.threeChannel();
        PreprocessSpec pp = a.manifest.preprocess;
        String other = "nchw".equals(pp.layout) ? "nhwc" : "nchw";
        PreprocessSpec flipped = new PreprocessSpec(pp.height, pp.width, other, pp.channels, pp.scale, pp.mean(), pp.std());
        Manifest wrong = a.manifest.withPreprocess(flipped);
        Manifest.Artifact art = wrong.defaultArtifact();
        GoldenCheck.Report r = new GoldenCheck(wrong, art, a.golden).run(a.images, new ReplayRunner(a.golden.forArtifact(art.file)));
        assertFalse(r.summary(), r.passed());
        assertEquals(r.summary(), GoldenCheck.Check.PREPROCESS, r.failedCheck());
    }

    /** Why the above needs 3 channels: for the 1-channel digits the same mistake is invisible. */
    @Test
    public void withOneChannelNhwcAndNchwAreTheSameBytes() throws IOException {
        AssetFolders.Loaded gray = null;
        for (File f : AssetFolders.all()) {
            AssetFolders.Loaded l = AssetFolders.load(f);
            if (l.manifest.preprocess.channelCount() == 1) {
                gray = l;
            }
        }
        assumeTrue("no 1-channel asset folder given", gray != null);
        for (Manifest.Artifact original : gray.manifest.artifacts) {
            Manifest.Artifact art = claimingTheOtherLayout(gray.manifest, original);
            GoldenCheck.Report r = new GoldenCheck(gray.manifest, art, gray.golden).run(gray.images, new ReplayRunner(gray.golden.forArtifact(art.file)));
            assertTrue(r.summary(), r.passed());
        }
    }
}
