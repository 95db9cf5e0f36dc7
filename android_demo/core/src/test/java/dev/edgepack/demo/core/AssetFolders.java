package dev.edgepack.demo.core;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import javax.imageio.ImageIO;
import org.json.JSONObject;

/**
 * The asset folders the test run generated with edgepack (`edgepack build ... --android-assets DIR`),
 * passed by run_tests.sh in the system property {@value #PROPERTY} (separated by the path separator).
 * Never hand-written fixtures: every expectation comes from what edgepack wrote.
 */
final class AssetFolders {
    static final String PROPERTY = "edgepack.assets";

    private AssetFolders() {}

    static List<File> all() {
        String v = System.getProperty(PROPERTY, "");
        List<File> out = new ArrayList<>();
        for (String p : v.split(File.pathSeparator)) {
            if (!p.isEmpty()) {
                File f = new File(p);
                if (!new File(f, ManifestKeys.MANIFEST_FILE).isFile()) {
                    throw new IllegalStateException(f + " has no " + ManifestKeys.MANIFEST_FILE
                            + "; write it with: edgepack build MODEL -c DATA -t TARGET -o OUT --android-assets " + f);
                }
                out.add(f);
            }
        }
        if (out.isEmpty()) {
            throw new IllegalStateException("no asset folders: run the tests with android_demo/core/run_tests.sh ASSETS_DIR [ASSETS_DIR2 ...]"
                    + " (system property " + PROPERTY + ")");
        }
        return out;
    }

    /** Parameters for a Parameterized test: {name, Loaded}. */
    static Collection<Object[]> parameters() throws IOException {
        List<Object[]> out = new ArrayList<>();
        for (File f : all()) {
            out.add(new Object[] {f.getName(), load(f)});
        }
        return out;
    }

    /** The first folder whose model takes 3-channel pictures (needed where NCHW and NHWC differ). */
    static Loaded threeChannel() throws IOException {
        for (File f : all()) {
            Loaded l = load(f);
            if (l.manifest.preprocess != null && l.manifest.preprocess.channelCount() == 3) {
                return l;
            }
        }
        throw new AssertionError("none of the asset folders " + all() + " holds a 3-channel (rgb/bgr) model; NCHW and NHWC"
                + " coincide for 1 channel, so this test needs one (tests/android/test_java_core.py builds it)");
    }

    static String read(File f) throws IOException {
        return new String(Files.readAllBytes(f.toPath()), StandardCharsets.UTF_8);
    }

    static Loaded load(File dir) throws IOException {
        String manifestJson = read(new File(dir, ManifestKeys.MANIFEST_FILE));
        Manifest m = Manifest.parse(manifestJson);
        if (m.goldenFile == null) {
            throw new AssertionError(dir + ": the manifest names no golden file");
        }
        String goldenJson = read(new File(dir, m.goldenFile));
        return new Loaded(dir, manifestJson, m, goldenJson, Golden.parse(goldenJson));
    }

    /** One folder, parsed. */
    static final class Loaded {
        final File dir;
        final String manifestJson;
        final Manifest manifest;
        final String goldenJson;
        final Golden golden;
        final ImageSource images;

        Loaded(File dir, String manifestJson, Manifest manifest, String goldenJson, Golden golden) {
            this.dir = dir;
            this.manifestJson = manifestJson;
            this.manifest = manifest;
            this.goldenJson = goldenJson;
            this.golden = golden;
            this.images = name -> decodePng(new File(dir, name));
        }

        JSONObject manifestObject() throws org.json.JSONException {
            return new JSONObject(manifestJson);
        }

        @Override
        public String toString() {
            return dir.getName();
        }
    }

    /**
     * Test-only PNG decoding with javax.imageio (the app uses BitmapFactory). Reads the raster's
     * samples directly: BufferedImage.getRGB would colour-convert 8-bit grayscale (linear gray
     * colour space) and change the values; Android decodes a gray PNG to R = G = B = gray.
     */
    static Pixels decodePng(File f) throws IOException {
        BufferedImage img = ImageIO.read(f);
        if (img == null) {
            throw new IOException(f + ": javax.imageio cannot decode it");
        }
        int w = img.getWidth();
        int h = img.getHeight();
        int[] argb = new int[w * h];
        Raster r = img.getRaster();
        int bands = r.getNumBands();
        boolean indexed = img.getColorModel() instanceof IndexColorModel;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int px;
                if (indexed) {
                    px = img.getRGB(x, y);
                } else if (bands <= 2) { // gray, gray + alpha
                    int g = r.getSample(x, y, 0);
                    int a = bands == 2 ? r.getSample(x, y, 1) : 255;
                    px = (a << 24) | (g << 16) | (g << 8) | g;
                } else {
                    int a = bands == 4 ? r.getSample(x, y, 3) : 255;
                    px = (a << 24) | (r.getSample(x, y, 0) << 16) | (r.getSample(x, y, 1) << 8) | r.getSample(x, y, 2);
                }
                argb[y * w + x] = px;
            }
        }
        if (r.getSampleModel().getSampleSize(0) != 8 && !indexed) {
            throw new IOException(f + ": only 8-bit PNGs are expected from edgepack");
        }
        return new Pixels(w, h, argb);
    }
}
