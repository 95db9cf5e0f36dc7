package dev.edgepack.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.util.Collection;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.junit.runners.Parameterized;
import org.junit.runners.Parameterized.Parameters;

/** The manifest edgepack generated parses, and everything it names is there. */
@RunWith(Parameterized.class)
public class ManifestTest {
    @Parameters(name = "{0}")
    public static Collection<Object[]> folders() throws IOException {
        return AssetFolders.parameters();
    }

    private final AssetFolders.Loaded a;

    public ManifestTest(String name, AssetFolders.Loaded loaded) {
        this.a = loaded;
    }

    @Test
    public void parsesTheGeneratedManifest() {
        Manifest m = a.manifest;
        assertNotNull("preprocess", m.preprocess);
        assertFalse("artifacts", m.artifacts.isEmpty());
        assertNotNull(m.modelName);
        for (Manifest.Artifact art : m.artifacts) {
            assertTrue(art + ": a runtime the app can run", art.isOnnxRuntime() || art.isLiteRt());
            assertNotNull(art + ": android_library", art.androidLibrary);
            assertEquals(art + ": one image input", 1, art.inputs.size());
            assertFalse(art + ": outputs", art.outputs.isEmpty());
            // the input shape fits the preprocessing in the artifact's layout (the Preprocessor checks it)
            Preprocessor p = new Preprocessor(m, art);
            assertEquals(m.preprocess.width, p.width());
            assertEquals(m.preprocess.height, p.height());
        }
        if (!m.labels.isEmpty()) {
            int classes = m.defaultArtifact().scoreOutput().elementCount();
            assertEquals("one label per class", classes, m.labels.size());
        }
    }

    @Test
    public void choosesTheDefaultArtifactOrOneByFileName() {
        Manifest m = a.manifest;
        Manifest.Artifact def = m.defaultArtifact();
        assertEquals(m.defaultArtifactFile, def.file);
        assertSame(def, m.choose(null));
        assertSame(def, m.choose(""));
        for (Manifest.Artifact art : m.artifacts) {
            assertSame(art, m.choose(art.file));
        }
        try {
            m.artifact("no-such-model.tflite");
            fail("an unknown file name must be refused");
        } catch (ManifestException e) {
            assertTrue(e.getMessage(), e.getMessage().contains(def.file));
        }
    }

    @Test
    public void everyFileTheManifestNamesIsInTheFolder() {
        Manifest m = a.manifest;
        assertTrue(new File(a.dir, ManifestKeys.MANIFEST_FILE).isFile());
        assertTrue(m.goldenFile, new File(a.dir, m.goldenFile).isFile());
        for (Manifest.Artifact art : m.artifacts) {
            File f = new File(a.dir, art.file);
            assertTrue(art.file, f.isFile() && f.length() > 0);
            assertEquals("a bare file name, as the app opens it from assets/edgepack/", f.getName(), art.file);
        }
        for (Golden.Case c : a.golden.cases) {
            assertNotNull("an image model's golden case names its picture", c.image);
            assertTrue(c.image, new File(a.dir, c.image).isFile());
        }
    }

    @Test
    public void goldenVectorsCoverEveryArtifact() {
        assertFalse("golden cases", a.golden.cases.isEmpty());
        for (Manifest.Artifact art : a.manifest.artifacts) {
            Golden.ArtifactGolden g = a.golden.forArtifact(art.file);
            assertNotNull(art.file + " has golden results", g);
            assertEquals(a.golden.cases.size(), g.results.size());
            assertTrue(art.file + ": tolerance", g.maxAbs > 0 && g.maxAbs < 1);
            for (Golden.Result r : g.results) {
                assertEquals(art.inputs.size(), r.inputs.size());
                assertEquals(art.outputs.size(), r.outputs.size());
                assertEquals("the buffer the artifact consumed has the manifest's dtype", art.imageInput().dtype, r.inputs.get(0).dtype);
                assertEquals(art.scoreOutput().dtype, r.outputs.get(0).dtype);
            }
        }
    }
}
