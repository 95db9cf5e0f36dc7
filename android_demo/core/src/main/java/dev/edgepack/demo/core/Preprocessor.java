package dev.edgepack.demo.core;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Turns a picture that is already at the model's size into the artifact's input buffer, exactly
 * as edgepack's Python does (edgepack/preprocess.py, then the runtime's raw-feed conversion):
 *
 * <ol>
 *   <li>channels from ARGB: gray = Pillow's "L" conversion (ITU-R 601-2 luma,
 *       {@code (R*19595 + G*38470 + B*7471 + 0x8000) >> 16}), rgb, or bgr; alpha is ignored;
 *   <li>float32 arithmetic, per channel: {@code x = float(pixel) * float(scale); x = (x - float(mean[c])) / float(std[c])};
 *   <li>written in the artifact input's layout (its own "layout", else preprocess.layout);
 *   <li>float32 as is, float16 rounded to nearest even, or int8/uint8/int16 quantised with the
 *       input's scale and zero point: {@code clamp(rint(double(x) / scale) + zero_point)}.
 * </ol>
 */
public final class Preprocessor {
    private final PreprocessSpec pp;
    private final TensorSpec input;
    private final String inputLayout;
    private final float scale;
    private final float[] mean;
    private final float[] std;

    public Preprocessor(Manifest manifest, Manifest.Artifact artifact) {
        this(requirePreprocess(manifest, artifact), artifact.imageInput(), manifest.inputLayout(artifact));
    }

    public Preprocessor(PreprocessSpec pp, TensorSpec input, String inputLayout) {
        this.pp = pp;
        this.input = input;
        this.inputLayout = inputLayout;
        PreprocessSpec.checkLayout(inputLayout, "input '" + input.name + "' layout");
        int c = pp.channelCount();
        int[] shape = input.shape();
        if (shape.length == 4) {
            int[] want = "nchw".equals(inputLayout) ? new int[] {1, c, pp.height, pp.width} : new int[] {1, pp.height, pp.width, c};
            for (int i = 0; i < 4; i++) {
                if (shape[i] > 0 && shape[i] != want[i]) {
                    throw new ManifestException("input '" + input.name + "' has shape " + java.util.Arrays.toString(shape)
                            + ", which does not fit layout " + inputLayout + " with size " + pp.height + "x" + pp.width
                            + " and " + c + " channel(s)");
                }
            }
        } else if (input.elementCount() != c * pp.height * pp.width) {
            throw new ManifestException("input '" + input.name + "' has " + input.elementCount() + " elements; the picture makes "
                    + c * pp.height * pp.width);
        }
        switch (input.dtype) {
            case FLOAT32:
            case FLOAT16:
                break;
            case INT8:
            case UINT8:
            case INT16:
                if (input.quantization == null) {
                    throw new ManifestException("input '" + input.name + "' is " + input.dtype
                            + " but the manifest gives no quantization (scale, zero_point) for it");
                }
                if (input.quantization.count() != 1 && input.quantization.count() != c) {
                    throw new ManifestException("input '" + input.name + "' has " + input.quantization.count()
                            + " quantization scales for " + c + " channel(s)");
                }
                break;
            default:
                throw new ManifestException("input '" + input.name + "' is " + input.dtype + "; this app feeds float32, float16, int8, uint8 or int16");
        }
        this.scale = (float) pp.scale;
        this.mean = new float[c];
        this.std = new float[c];
        for (int i = 0; i < c; i++) {
            mean[i] = (float) pp.mean(i);
            std[i] = (float) pp.std(i);
        }
    }

    private static PreprocessSpec requirePreprocess(Manifest manifest, Manifest.Artifact artifact) {
        if (manifest.preprocess == null) {
            throw new ManifestException("the manifest has no preprocess section: " + artifact.file + " does not take pictures");
        }
        return manifest.preprocess;
    }

    public int width() {
        return pp.width;
    }

    public int height() {
        return pp.height;
    }

    public TensorSpec input() {
        return input;
    }

    public String inputLayout() {
        return inputLayout;
    }

    /** Channel values 0..255 in (y, x, c) order, channels in the manifest's order (gray, rgb or bgr). */
    public int[] channelValues(Pixels p) {
        if (p.width != pp.width || p.height != pp.height) {
            throw new IllegalArgumentException("the picture is " + p.width + "x" + p.height + "; the model takes "
                    + pp.width + "x" + pp.height + " (resize it first)");
        }
        int c = pp.channelCount();
        int[] out = new int[p.argb.length * c];
        for (int i = 0; i < p.argb.length; i++) {
            int px = p.argb[i];
            int r = (px >>> 16) & 0xff;
            int g = (px >>> 8) & 0xff;
            int b = px & 0xff;
            switch (pp.channels) {
                case "gray":
                    out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
                    break;
                case "rgb":
                    out[3 * i] = r;
                    out[3 * i + 1] = g;
                    out[3 * i + 2] = b;
                    break;
                default: // bgr
                    out[3 * i] = b;
                    out[3 * i + 1] = g;
                    out[3 * i + 2] = r;
                    break;
            }
        }
        return out;
    }

    /** The normalised value of one channel value, in float32 like numpy. */
    private float normalize(int value, int channel) {
        float x = (float) value * scale;
        return (x - mean[channel]) / std[channel];
    }

    /** The float32 tensor edgepack's pixels_to_tensor makes: in preprocess.layout, batch of one. */
    public float[] tensor(Pixels p) {
        return floats(p, pp.layout);
    }

    /** The float32 values of the artifact's input, in the artifact input's layout (before any quantisation). */
    public float[] floatInput(Pixels p) {
        return floats(p, inputLayout);
    }

    private float[] floats(Pixels p, String layout) {
        int[] v = channelValues(p);
        int c = pp.channelCount();
        int hw = pp.height * pp.width;
        float[] out = new float[hw * c];
        boolean nchw = "nchw".equals(layout);
        for (int i = 0; i < hw; i++) {
            for (int k = 0; k < c; k++) {
                out[nchw ? k * hw + i : i * c + k] = normalize(v[i * c + k], k);
            }
        }
        return out;
    }

    /** The channel of element {@code index} of a buffer in the input's layout. */
    private int channelOf(int index) {
        int c = pp.channelCount();
        return "nchw".equals(inputLayout) ? index / (pp.height * pp.width) : index % c;
    }

    /** The artifact's input buffer: its dtype and layout, a direct buffer in native order, position 0. */
    public ByteBuffer inputBuffer(Pixels p) {
        float[] x = floatInput(p);
        ByteBuffer buf = ByteBuffer.allocateDirect(x.length * input.dtype.bytes).order(ByteOrder.nativeOrder());
        Quantization q = input.quantization;
        for (int i = 0; i < x.length; i++) {
            switch (input.dtype) {
                case FLOAT32:
                    buf.putFloat(x[i]);
                    break;
                case FLOAT16:
                    buf.putShort(Half.fromFloat(x[i]));
                    break;
                case INT8:
                case UINT8:
                    buf.put((byte) q.quantize(x[i], channelOf(i), input.dtype));
                    break;
                case INT16:
                    buf.putShort((short) q.quantize(x[i], channelOf(i), input.dtype));
                    break;
                default:
                    throw new IllegalStateException(input.dtype.toString());
            }
        }
        ((Buffer) buf).rewind(); // through Buffer: ByteBuffer.rewind() returns ByteBuffer only on newer Android
        return buf;
    }
}
