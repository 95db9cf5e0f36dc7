package dev.edgepack.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.junit.runners.Parameterized;
import org.junit.runners.Parameterized.Parameters;

/** The golden raw outputs, postprocessed in Java, give edgepack's scores, top-1 and label. */
@RunWith(Parameterized.class)
public class PostprocessorTest {
    @Parameters(name = "{0}")
    public static Collection<Object[]> folders() throws IOException {
        return AssetFolders.parameters();
    }

    private final AssetFolders.Loaded a;

    public PostprocessorTest(String name, AssetFolders.Loaded loaded) {
        this.a = loaded;
    }

    private static List<ByteBuffer> buffers(Golden.Result r) {
        List<ByteBuffer> out = new ArrayList<>();
        for (Golden.GoldenTensor t : r.outputs) {
            out.add(t.toBuffer());
        }
        return out;
    }

    @Test
    public void goldenRawOutputsDequantiseToTheGoldenScores() {
        for (Manifest.Artifact art : a.manifest.artifacts) {
            for (Golden.Result r : a.golden.forArtifact(art.file).results) {
                float[] s = Postprocessor.dequantize(r.outputs.get(0).toBuffer(), art.scoreOutput());
                double[] expect = r.scores();
                assertEquals(art.file, expect.length, s.length);
                for (int i = 0; i < s.length; i++) {
                    assertEquals(art.file + " score " + i, expect[i], s[i], 1e-6 * Math.max(1, Math.abs(expect[i])));
                }
            }
        }
    }

    @Test
    public void goldenRawOutputsGiveTheGoldenTop1AndItsLabel() {
        for (Manifest.Artifact art : a.manifest.artifacts) {
            Postprocessor post = new Postprocessor(a.manifest, art);
            for (Golden.Result r : a.golden.forArtifact(art.file).results) {
                Postprocessor.Classification c = post.classify(buffers(r), 3);
                Prediction best = c.top.get(0);
                assertEquals(art.file + ": top-1", r.top1, best.index);
                String label = a.manifest.labels.isEmpty() ? "class " + r.top1 : a.manifest.labels.get(r.top1);
                assertEquals(label, best.label);
                assertEquals(Math.min(3, c.scores.length), c.top.size());
                double sum = 0;
                for (float p : c.probabilities) {
                    sum += p;
                }
                assertEquals("probabilities sum to 1", 1.0, sum, 1e-5);
                for (int i = 1; i < c.top.size(); i++) {
                    assertTrue("best first", c.top.get(i - 1).score >= c.top.get(i).score);
                    assertTrue(c.top.get(i - 1).probability >= c.top.get(i).probability);
                }
            }
        }
    }
}
