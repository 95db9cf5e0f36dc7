package dev.edgepack.demo.core;

import java.util.Arrays;

/**
 * Affine quantisation of an integer tensor, as edgepack's manifest writes it:
 * {@code real = (q - zero_point) * scale}; one entry per tensor, or one per channel.
 */
public final class Quantization {
    private final double[] scale;
    private final long[] zeroPoint;

    public Quantization(double[] scale, long[] zeroPoint) {
        if (scale.length == 0) {
            throw new ManifestException("quantization has no scale");
        }
        if (zeroPoint.length != 0 && zeroPoint.length != scale.length) {
            throw new ManifestException("quantization has " + scale.length + " scales but " + zeroPoint.length + " zero points");
        }
        for (double s : scale) {
            if (!(s > 0) || Double.isInfinite(s)) {
                throw new ManifestException("quantization scale must be a positive number, got " + s);
            }
        }
        this.scale = scale.clone();
        this.zeroPoint = zeroPoint.length == 0 ? new long[scale.length] : zeroPoint.clone();
    }

    /** How many (scale, zero point) pairs: 1 for per-tensor quantisation. */
    public int count() {
        return scale.length;
    }

    /** The scale of channel {@code c} (per-tensor quantisation: the only one). */
    public double scale(int c) {
        return scale[scale.length == 1 ? 0 : c];
    }

    public long zeroPoint(int c) {
        return zeroPoint[zeroPoint.length == 1 ? 0 : c];
    }

    /**
     * float -> integer, exactly like edgepack's host runtimes:
     * {@code clamp(rint(double(x) / scale) + zero_point)}, rounding half to even (numpy's round/rint).
     */
    public long quantize(float x, int channel, DType type) {
        double q = Math.rint((double) x / scale(channel)) + zeroPoint(channel);
        if (Double.isNaN(q)) {
            q = zeroPoint(channel);
        }
        double lo = type.min();
        double hi = type.max();
        return (long) Math.max(lo, Math.min(hi, q));
    }

    /** integer -> float in float32 arithmetic: {@code (float(q) - float(zero_point)) * float(scale)}. */
    public float dequantize(long q, int channel) {
        return ((float) q - (float) zeroPoint(channel)) * (float) scale(channel);
    }

    @Override
    public String toString() {
        return "{scale=" + Arrays.toString(scale) + ", zero_point=" + Arrays.toString(zeroPoint) + "}";
    }
}
