package dev.edgepack.demo.core;

/** IEEE 754 half precision (float16) conversions, rounding to nearest even like numpy. */
public final class Half {
    private Half() {}

    public static float toFloat(short h) {
        int bits = h & 0xffff;
        boolean negative = (bits & 0x8000) != 0;
        int exp = (bits >>> 10) & 0x1f;
        int mant = bits & 0x3ff;
        if (exp == 0) { // zero or subnormal: mant * 2^-24, exact in float
            float v = mant * 0x1p-24f;
            return negative ? -v : v;
        }
        int sign = negative ? 0x80000000 : 0;
        if (exp == 31) { // infinity or NaN
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7fffffff;
        if (abs >= 0x7f800000) { // infinity or NaN (kept quiet)
            return (short) (abs == 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((abs >>> 13) & 0x3ff));
        }
        if (abs >= 0x477ff000) { // >= 65520: rounds to infinity
            return (short) (sign | 0x7c00);
        }
        if (abs < 0x38800000) { // below 2^-14: a subnormal half (or zero); v * 2^24 is exact in float
            float scaled = Float.intBitsToFloat(abs) * 0x1p24f;
            return (short) (sign | (int) Math.rint(scaled));
        }
        int exp = (abs >>> 23) - 127 + 15;
        int mant = abs & 0x7fffff;
        int half = (exp << 10) | (mant >>> 13);
        int rest = mant & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) {
            half++; // a carry into the exponent is the right result
        }
        return (short) (sign | half);
    }
}
