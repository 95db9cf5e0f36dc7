package dev.edgepack.demo.core;

import java.util.Locale;

/** Element types, named as edgepack writes them (numpy dtype names). */
public enum DType {
    FLOAT32("float32", 4, false),
    FLOAT16("float16", 2, false),
    FLOAT64("float64", 8, false),
    INT8("int8", 1, true),
    UINT8("uint8", 1, true),
    INT16("int16", 2, true),
    INT32("int32", 4, true),
    INT64("int64", 8, true),
    BOOL("bool", 1, true);

    public final String numpyName;
    public final int bytes;
    public final boolean integer;

    DType(String numpyName, int bytes, boolean integer) {
        this.numpyName = numpyName;
        this.bytes = bytes;
        this.integer = integer;
    }

    public static DType fromNumpy(String name) {
        for (DType t : values()) {
            if (t.numpyName.equals(name)) {
                return t;
            }
        }
        throw new ManifestException("unknown dtype '" + name + "'");
    }

    /** Smallest value of an integer type (for clamping quantised values). */
    public long min() {
        switch (this) {
            case INT8: return Byte.MIN_VALUE;
            case UINT8: return 0;
            case INT16: return Short.MIN_VALUE;
            case INT32: return Integer.MIN_VALUE;
            case INT64: return Long.MIN_VALUE;
            case BOOL: return 0;
            default: throw new IllegalStateException(this + " is not an integer type");
        }
    }

    /** Largest value of an integer type. */
    public long max() {
        switch (this) {
            case INT8: return Byte.MAX_VALUE;
            case UINT8: return 255;
            case INT16: return Short.MAX_VALUE;
            case INT32: return Integer.MAX_VALUE;
            case INT64: return Long.MAX_VALUE;
            case BOOL: return 1;
            default: throw new IllegalStateException(this + " is not an integer type");
        }
    }

    @Override
    public String toString() {
        return numpyName.toLowerCase(Locale.ROOT);
    }
}
