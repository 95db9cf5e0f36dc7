package dev.edgepack.demo.core;

import java.util.Arrays;

/** One input or output of an artifact, as the manifest describes it. */
public final class TensorSpec {
    public final String name;
    /** Dimensions; -1 where the manifest gives an unknown (dynamic) size. */
    private final int[] shape;
    public final DType dtype;
    /** "nchw" or "nhwc" for 4-D image tensors, else null. */
    public final String layout;
    /** Null for float I/O. */
    public final Quantization quantization;

    public TensorSpec(String name, int[] shape, DType dtype, String layout, Quantization quantization) {
        this.name = name;
        this.shape = shape.clone();
        this.dtype = dtype;
        this.layout = layout;
        this.quantization = quantization;
    }

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Shape with unknown dimensions set to 1 (batch of one). */
    public long[] concreteShape() {
        long[] out = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            out[i] = shape[i] > 0 ? shape[i] : 1;
        }
        return out;
    }

    /** Number of elements, with unknown dimensions taken as 1. */
    public int elementCount() {
        long n = 1;
        for (long d : concreteShape()) {
            n *= d;
        }
        if (n > Integer.MAX_VALUE) {
            throw new ManifestException("tensor '" + name + "' is too large: " + Arrays.toString(shape));
        }
        return (int) n;
    }

    public int byteSize() {
        return elementCount() * dtype.bytes;
    }

    /** A copy with another layout, shape and quantisation (used to describe what a buffer would be). */
    public TensorSpec with(int[] newShape, String newLayout, DType newType, Quantization newQuantization) {
        return new TensorSpec(name, newShape, newType, newLayout, newQuantization);
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape) + (layout != null ? " " + layout : "")
                + (quantization != null ? " q" + quantization : "");
    }
}
