package dev.edgepack.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.Test;

/** Rounding and number formats that must match numpy bit for bit. */
public class QuantizationTest {

    @Test
    public void quantizeRoundsHalfToEvenLikeNumpyAndClamps() {
        Quantization q = new Quantization(new double[] {0.5}, new long[] {0});
        // x / 0.5 lands exactly on .5: numpy's round/rint go to the even neighbour
        assertEquals(0, q.quantize(0.25f, 0, DType.INT8));
        assertEquals(2, q.quantize(0.75f, 0, DType.INT8));
        assertEquals(2, q.quantize(1.25f, 0, DType.INT8));
        assertEquals(4, q.quantize(1.75f, 0, DType.INT8));
        assertEquals(0, q.quantize(-0.25f, 0, DType.INT8));
        assertEquals(-2, q.quantize(-0.75f, 0, DType.INT8));
        assertEquals(1, q.quantize(0.26f, 0, DType.INT8));
        assertEquals(127, q.quantize(1000f, 0, DType.INT8));
        assertEquals(-128, q.quantize(-1000f, 0, DType.INT8));
        assertEquals(255, q.quantize(1000f, 0, DType.UINT8));
        assertEquals(0, q.quantize(-1f, 0, DType.UINT8));
        assertEquals(32767, q.quantize(1e6f, 0, DType.INT16));
        Quantization z = new Quantization(new double[] {0.5}, new long[] {-3});
        assertEquals(-3, z.quantize(0.25f, 0, DType.INT8)); // rint(0.5) = 0, then + zero point
        assertEquals(-128, z.quantize(-63f, 0, DType.INT8));
    }

    @Test
    public void perChannelQuantizationUsesEachChannelsScale() {
        Quantization q = new Quantization(new double[] {0.1, 0.2, 0.4}, new long[] {0, 1, 2});
        assertEquals(10, q.quantize(1f, 0, DType.INT8));
        assertEquals(6, q.quantize(1f, 1, DType.INT8));
        assertEquals(4, q.quantize(1f, 2, DType.INT8)); // 2.5 -> 2, + 2
        assertEquals(1f, q.dequantize(10, 0), 1e-6);
        assertEquals(1f, q.dequantize(6, 1), 1e-6);
    }

    @Test
    public void dequantizeInvertsQuantizeWithinHalfAStep() {
        float scale = 0.0371f;
        Quantization q = new Quantization(new double[] {scale}, new long[] {-7});
        for (float x = -4.5f; x < 4.5f; x += 0.01f) {
            long v = q.quantize(x, 0, DType.INT8);
            assertEquals(x, q.dequantize(v, 0), scale / 2 + 1e-6);
        }
    }

    @Test
    public void halfFloatRoundTripsEveryValue() {
        for (int h = 0; h < 0x10000; h++) {
            short s = (short) h;
            float f = Half.toFloat(s);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(Half.toFloat(Half.fromFloat(f))));
                continue;
            }
            assertEquals("0x" + Integer.toHexString(h), h, Half.fromFloat(f) & 0xffff);
        }
        assertEquals(65504f, Half.toFloat((short) 0x7bff), 0);
        assertEquals(0x1p-24f, Half.toFloat((short) 0x0001), 0);
    }

    @Test
    public void halfFloatRoundsToNearestEvenLikeNumpy() {
        for (int h = 0; h < 0x7bff; h++) { // every pair of neighbouring positive finite halves
            float lo = Half.toFloat((short) h);
            float hi = Half.toFloat((short) (h + 1));
            float mid = (float) (((double) lo + hi) / 2); // exact: halves have 11 significant bits
            int even = (h & 1) == 0 ? h : h + 1;
            assertEquals("tie between 0x" + Integer.toHexString(h) + " and its neighbour", even, Half.fromFloat(mid) & 0xffff);
            assertEquals(h, Half.fromFloat(Math.nextDown(mid)) & 0xffff);
            assertEquals(h + 1, Half.fromFloat(Math.nextUp(mid)) & 0xffff);
            assertEquals(h | 0x8000, Half.fromFloat(-Math.nextDown(mid)) & 0xffff);
        }
        assertEquals(0x7c00, Half.fromFloat(65520f) & 0xffff); // ties to even = infinity
        assertEquals(0x7bff, Half.fromFloat(Math.nextDown(65520f)) & 0xffff);
        assertEquals(0, Half.fromFloat(0x1p-25f) & 0xffff); // half the smallest subnormal: ties to 0
    }

    @Test
    public void buffersReadSignedAndUnsignedIntegers() {
        ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.nativeOrder());
        b.put((byte) -100).put((byte) 200).putShort((short) -30000);
        b.rewind();
        ByteBuffer bytes = b.duplicate();
        bytes.limit(2);
        assertEquals(-100, Buffers.values(bytes, DType.INT8)[0], 0);
        assertEquals(200, Buffers.values(bytes, DType.UINT8)[1], 0);
        ByteBuffer shorts = b.duplicate().order(ByteOrder.nativeOrder());
        shorts.position(2);
        assertEquals(-30000, Buffers.values(shorts, DType.INT16)[0], 0);
    }
}
