package dev.edgepack.demo.core;

import java.util.Arrays;

/**
 * How a picture becomes the model's input, as edgepack's preprocess.toml / manifest say:
 * {@code tensor = ((pixel * scale) - mean[c]) / std[c]} per channel, for a picture already
 * resized to {@code size}, with channels in {@code channels} order (gray, rgb or bgr).
 */
public final class PreprocessSpec {
    public final int height;
    public final int width;
    /** The layout of edgepack's float tensor: "nchw" or "nhwc". */
    public final String layout;
    /** "gray", "rgb" or "bgr". */
    public final String channels;
    public final double scale;
    private final double[] mean;
    private final double[] std;

    public PreprocessSpec(int height, int width, String layout, String channels, double scale, double[] mean, double[] std) {
        if (height <= 0 || width <= 0) {
            throw new ManifestException("preprocess size must be positive, got [" + height + ", " + width + "]");
        }
        checkLayout(layout, "preprocess layout");
        if (!"gray".equals(channels) && !"rgb".equals(channels) && !"bgr".equals(channels)) {
            throw new ManifestException("preprocess channels is '" + channels + "'; this app knows gray, rgb, bgr");
        }
        int n = "gray".equals(channels) ? 1 : 3;
        if (mean.length != n || std.length != n) {
            throw new ManifestException("preprocess mean/std need " + n + " values for channels '" + channels
                    + "', got mean " + Arrays.toString(mean) + " std " + Arrays.toString(std));
        }
        for (double s : std) {
            if (s == 0) {
                throw new ManifestException("preprocess std must not contain 0");
            }
        }
        this.height = height;
        this.width = width;
        this.layout = layout;
        this.channels = channels;
        this.scale = scale;
        this.mean = mean.clone();
        this.std = std.clone();
    }

    static void checkLayout(String layout, String what) {
        if (!"nchw".equals(layout) && !"nhwc".equals(layout)) {
            throw new ManifestException(what + " is '" + layout + "'; this app knows nchw, nhwc");
        }
    }

    public int channelCount() {
        return "gray".equals(channels) ? 1 : 3;
    }

    public double mean(int c) {
        return mean[c];
    }

    public double std(int c) {
        return std[c];
    }

    public double[] mean() {
        return mean.clone();
    }

    public double[] std() {
        return std.clone();
    }

    /** A copy with another mean and std (the tests use it to simulate a mismatched manifest). */
    public PreprocessSpec withNormalization(double[] newMean, double[] newStd) {
        return new PreprocessSpec(height, width, layout, channels, scale, newMean, newStd);
    }

    @Override
    public String toString() {
        return "size " + height + "x" + width + ", " + channels + ", " + layout + ", scale " + scale
                + ", mean " + Arrays.toString(mean) + ", std " + Arrays.toString(std);
    }
}
