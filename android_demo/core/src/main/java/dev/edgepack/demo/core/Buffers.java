package dev.edgepack.demo.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Reading typed values out of raw tensor buffers (native byte order). */
public final class Buffers {
    private Buffers() {}

    /** Number of whole elements of {@code type} from the buffer's position to its limit. */
    public static int count(ByteBuffer raw, DType type) {
        return raw.remaining() / type.bytes;
    }

    /**
     * Every element as a double, exactly (float32/float16 widen exactly, integers up to 2^53).
     * Reads from the buffer's position without moving it.
     */
    public static double[] values(ByteBuffer raw, DType type) {
        ByteBuffer b = raw.duplicate().order(ByteOrder.nativeOrder());
        int n = count(raw, type);
        int base = b.position();
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            int at = base + i * type.bytes;
            switch (type) {
                case FLOAT32: out[i] = b.getFloat(at); break;
                case FLOAT16: out[i] = Half.toFloat(b.getShort(at)); break;
                case FLOAT64: out[i] = b.getDouble(at); break;
                case INT8: out[i] = b.get(at); break;
                case UINT8: out[i] = b.get(at) & 0xff; break;
                case BOOL: out[i] = b.get(at) != 0 ? 1 : 0; break;
                case INT16: out[i] = b.getShort(at); break;
                case INT32: out[i] = b.getInt(at); break;
                case INT64: out[i] = (double) b.getLong(at); break;
                default: throw new IllegalStateException(type.toString());
            }
        }
        return out;
    }
}
