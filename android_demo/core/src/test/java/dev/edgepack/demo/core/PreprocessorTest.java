package dev.edgepack.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.ByteBuffer;
import java.util.Collection;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.junit.runners.Parameterized;
import org.junit.runners.Parameterized.Parameters;

/** Java preprocessing of the golden PNGs == edgepack's Python preprocessing recorded in golden.json. */
@RunWith(Parameterized.class)
public class PreprocessorTest {
    @Parameters(name = "{0}")
    public static Collection<Object[]> folders() throws IOException {
        return AssetFolders.parameters();
    }

    private final AssetFolders.Loaded a;

    public PreprocessorTest(String name, AssetFolders.Loaded loaded) {
        this.a = loaded;
    }

    static double[] doubles(float[] f) {
        return GoldenCheck.toDoubles(f);
    }

    static void assertClose(String what, double[] expected, double[] actual, double tol) {
        assertEquals(what + ": element count", expected.length, actual.length);
        GoldenCheck.Diff d = GoldenCheck.Diff.of(expected, actual, tol);
        assertTrue(what + ": " + d.describe(expected.length), d.differing == 0);
    }

    @Test
    public void javaFloatTensorMatchesEdgepacksPreprocessing() throws IOException {
        Preprocessor p = new Preprocessor(a.manifest, a.manifest.defaultArtifact());
        for (Golden.Case c : a.golden.cases) {
            float[] t = p.tensor(a.images.load(c.image));
            Golden.GoldenTensor expect = c.inputs.get(0);
            assertEquals("float32", expect.dtype.numpyName);
            assertClose(c.image, expect.data(), doubles(t), GoldenCheck.FLOAT_INPUT_TOLERANCE);
        }
    }

    @Test
    public void javaInputBufferMatchesWhatEveryArtifactConsumed() throws IOException {
        for (Manifest.Artifact art : a.manifest.artifacts) {
            Preprocessor p = new Preprocessor(a.manifest, art);
            Golden.ArtifactGolden g = a.golden.forArtifact(art.file);
            for (int i = 0; i < a.golden.cases.size(); i++) {
                ByteBuffer buf = p.inputBuffer(a.images.load(a.golden.cases.get(i).image));
                assertTrue("direct buffer", buf.isDirect());
                assertEquals("position 0", 0, buf.position());
                assertEquals("size in bytes", art.imageInput().byteSize(), buf.remaining());
                Golden.GoldenTensor expect = g.results.get(i).inputs.get(0);
                double tol = art.imageInput().dtype.integer ? 0 : GoldenCheck.FLOAT_INPUT_TOLERANCE;
                assertClose(art.file + " case " + i, expect.data(), Buffers.values(buf, art.imageInput().dtype), tol);
            }
        }
    }

    /** NHWC inputs (LiteRT): the buffer is edgepack's tensor transposed, element for element. */
    @Test
    public void nhwcAndNchwBuffersAreTransposesOfEdgepacksTensor() throws IOException {
        PreprocessSpec pp = a.manifest.preprocess;
        int h = pp.height, w = pp.width, c = pp.channelCount();
        TensorSpec in = a.manifest.defaultArtifact().imageInput();
        for (String layout : new String[] {"nchw", "nhwc"}) {
            int[] shape = "nchw".equals(layout) ? new int[] {1, c, h, w} : new int[] {1, h, w, c};
            Preprocessor p = new Preprocessor(pp, in.with(shape, layout, DType.FLOAT32, null), layout);
            for (Golden.Case gc : a.golden.cases) {
                double[] src = gc.inputs.get(0).data(); // edgepack's tensor, in pp.layout
                double[] expect = new double[src.length];
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        for (int k = 0; k < c; k++) {
                            int from = "nchw".equals(pp.layout) ? (k * h + y) * w + x : (y * w + x) * c + k;
                            int to = "nchw".equals(layout) ? (k * h + y) * w + x : (y * w + x) * c + k;
                            expect[to] = src[from];
                        }
                    }
                }
                ByteBuffer buf = p.inputBuffer(a.images.load(gc.image));
                assertClose(layout + " " + gc.image, expect, Buffers.values(buf, DType.FLOAT32), GoldenCheck.FLOAT_INPUT_TOLERANCE);
            }
        }
    }

    /**
     * Integer inputs (LiteRT int8/uint8): quantising edgepack's own tensors gives, bit for bit, what
     * numpy's {@code clip(round(float64(x) / scale) + zp)} gives (checked here with BigDecimal's
     * HALF_EVEN on the same float64 quotient), with scales a converter would pick from the range.
     */
    @Test
    public void quantisedInputBuffersRoundHalfToEvenAndClamp() throws IOException {
        PreprocessSpec pp = a.manifest.preprocess;
        TensorSpec in = a.manifest.defaultArtifact().imageInput();
        String layout = a.manifest.inputLayout(a.manifest.defaultArtifact());
        for (Golden.Case gc : a.golden.cases) {
            double[] x = gc.inputs.get(0).data();
            double lo = 0, hi = 0;
            for (double v : x) {
                lo = Math.min(lo, v);
                hi = Math.max(hi, v);
            }
            for (DType type : new DType[] {DType.INT8, DType.UINT8, DType.INT16}) {
                // a converter's affine parameters, deliberately 10% narrow so that clamping happens too
                double scale = (float) (0.9 * (hi - lo) / (type.max() - type.min()));
                long zp = Math.round(type.min() - lo / scale);
                Quantization q = new Quantization(new double[] {scale}, new long[] {zp});
                Preprocessor p = new Preprocessor(pp, in.with(in.shape(), layout, type, q), layout);
                ByteBuffer buf = p.inputBuffer(a.images.load(gc.image));
                double[] got = Buffers.values(buf, type);
                // quantise edgepack's own float32 tensor (when it is in the buffer's layout, as for every
                // artifact edgepack writes today), else the Java float input (equal to it, tested above)
                double[] src = layout.equals(pp.layout) ? x : doubles(p.floatInput(a.images.load(gc.image)));
                boolean clamped = false;
                for (int i = 0; i < got.length; i++) {
                    long want = new BigDecimal(src[i] / scale).setScale(0, RoundingMode.HALF_EVEN).longValueExact() + zp;
                    long clampedWant = Math.max(type.min(), Math.min(type.max(), want));
                    clamped |= clampedWant != want;
                    assertEquals(type + " element " + i + " of " + gc.image, clampedWant, (long) got[i]);
                }
                assertTrue("the narrow range makes some values clamp", clamped || hi == lo);
            }
        }
    }
}
