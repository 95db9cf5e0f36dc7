package dev.edgepack.demo;

import android.content.res.AssetFileDescriptor;
import android.content.res.AssetManager;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import dev.edgepack.demo.core.ImageSource;
import dev.edgepack.demo.core.ManifestKeys;
import dev.edgepack.demo.core.Pixels;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;

/**
 * The files edgepack wrote into app/src/main/assets/edgepack/. Only {@link ManifestKeys#MANIFEST_FILE}
 * is known by name; every other file name comes from the manifest or golden.json.
 */
final class EdgepackAssets implements ImageSource {
    static final String DIR = "edgepack";

    private final AssetManager assets;

    EdgepackAssets(AssetManager assets) {
        this.assets = assets;
    }

    private static String path(String name) {
        return DIR + "/" + name;
    }

    boolean hasManifest() {
        try {
            assets.open(path(ManifestKeys.MANIFEST_FILE)).close();
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    byte[] bytes(String name) throws IOException {
        try (InputStream in = assets.open(path(name))) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] chunk = new byte[1 << 16];
            for (int n; (n = in.read(chunk)) > 0; ) {
                out.write(chunk, 0, n);
            }
            return out.toByteArray();
        }
    }

    String text(String name) throws IOException {
        return new String(bytes(name), StandardCharsets.UTF_8);
    }

    /**
     * The file memory-mapped from the APK (it must be stored uncompressed: noCompress in
     * app/build.gradle.kts); if it is compressed after all, a direct buffer copy.
     */
    ByteBuffer map(String name) throws IOException {
        try (AssetFileDescriptor fd = assets.openFd(path(name));
                FileInputStream in = fd.createInputStream()) {
            FileChannel ch = in.getChannel();
            return ch.map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
        } catch (FileNotFoundException compressed) { // openFd refuses compressed assets
            byte[] b = bytes(name);
            ByteBuffer buf = ByteBuffer.allocateDirect(b.length).order(ByteOrder.nativeOrder());
            buf.put(b);
            ((java.nio.Buffer) buf).rewind();
            return buf;
        }
    }

    /** Decode an image asset at its own size (golden images are already at the model's size). */
    @Override
    public Pixels load(String name) throws IOException {
        BitmapFactory.Options o = new BitmapFactory.Options();
        o.inPreferredConfig = Bitmap.Config.ARGB_8888;
        o.inScaled = false;
        Bitmap b;
        try (InputStream in = assets.open(path(name))) {
            b = BitmapFactory.decodeStream(in, null, o);
        }
        if (b == null) {
            throw new IOException(name + ": BitmapFactory cannot decode it");
        }
        return pixels(b);
    }

    /** ARGB_8888 pixels (non-premultiplied, as Bitmap.getPixels returns them). */
    static Pixels pixels(Bitmap b) {
        int w = b.getWidth();
        int h = b.getHeight();
        int[] argb = new int[w * h];
        b.getPixels(argb, 0, w, 0, 0, w, h);
        return new Pixels(w, h, argb);
    }
}
