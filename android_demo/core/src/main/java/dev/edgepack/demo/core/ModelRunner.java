package dev.edgepack.demo.core;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * Runs one artifact in its runtime. The app implements it per runtime (ONNX Runtime's OrtSession,
 * LiteRT's Interpreter); the JVM tests replay edgepack's recorded outputs instead.
 */
public interface ModelRunner extends AutoCloseable {
    /**
     * Run once.
     *
     * @param input the preprocessed image input in the artifact's own dtype and layout, as
     *     {@link Preprocessor#inputBuffer} makes it: a direct buffer in native byte order,
     *     position 0, limit = its size in bytes. The runner must not keep it after returning.
     * @return the artifact's raw outputs (its own dtype, not dequantised), in the order of the
     *     manifest's {@code outputs}, each a buffer in native byte order from position 0. They may
     *     be reused by the runner: read them before the next call.
     */
    List<ByteBuffer> run(ByteBuffer input) throws Exception;

    /** Release the runtime's session; no checked exceptions, so callers can close in finally blocks. */
    @Override
    default void close() {}
}
