package dev.edgepack.demo.core;

import java.io.IOException;

/** Decodes an image file of the assets by name (the app: BitmapFactory; the JVM tests: javax.imageio). */
public interface ImageSource {
    Pixels load(String fileName) throws IOException;
}
