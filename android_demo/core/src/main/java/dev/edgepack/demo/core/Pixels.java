package dev.edgepack.demo.core;

/** A decoded picture: ARGB_8888 pixels (0xAARRGGBB), row-major, as Android's Bitmap.getPixels gives them. */
public final class Pixels {
    public final int width;
    public final int height;
    public final int[] argb;

    public Pixels(int width, int height, int[] argb) {
        if (argb.length != width * height) {
            throw new IllegalArgumentException("need " + width * height + " pixels, got " + argb.length);
        }
        this.width = width;
        this.height = height;
        this.argb = argb;
    }
}
