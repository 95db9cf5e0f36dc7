package dev.edgepack.demo;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.edgepack.demo.core.DType;
import dev.edgepack.demo.core.Manifest;
import dev.edgepack.demo.core.ModelRunner;
import dev.edgepack.demo.core.TensorSpec;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;

/** Runs an .ort (or .onnx) artifact with ONNX Runtime Android (com.microsoft.onnxruntime:onnxruntime-android). */
final class OrtRunner implements ModelRunner {
    private final OrtEnvironment env;
    private final OrtSession.SessionOptions options;
    private final OrtSession session;
    private final TensorSpec input;
    private final String inputName;
    private final List<String> outputNames = new ArrayList<>();

    OrtRunner(byte[] model, Manifest.Artifact artifact, int threads) throws OrtException {
        env = OrtEnvironment.getEnvironment();
        options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(threads);
        session = env.createSession(model, options);
        input = artifact.imageInput();
        // the manifest's names, as edgepack read them from the artifact; by position as a fallback
        List<String> ins = new ArrayList<>(session.getInputNames());
        if (ins.size() != 1) {
            throw new IllegalStateException(artifact.file + " has " + ins.size() + " inputs; this demo feeds one image");
        }
        inputName = ins.contains(input.name) ? input.name : ins.get(0);
        List<String> outs = new ArrayList<>(session.getOutputNames());
        for (int i = 0; i < artifact.outputs.size(); i++) {
            String want = artifact.outputs.get(i).name;
            outputNames.add(outs.contains(want) ? want : outs.get(i));
        }
    }

    @Override
    public List<ByteBuffer> run(ByteBuffer in) throws OrtException {
        ByteBuffer data = in.duplicate().order(ByteOrder.nativeOrder());
        long[] shape = input.concreteShape();
        try (OnnxTensor t = tensor(data, shape, input.dtype);
                OrtSession.Result r = session.run(Collections.singletonMap(inputName, t), new LinkedHashSet<>(outputNames))) {
            List<ByteBuffer> out = new ArrayList<>();
            for (String name : outputNames) {
                Optional<OnnxValue> v = r.get(name);
                if (!v.isPresent() || !(v.get() instanceof OnnxTensor)) {
                    throw new IllegalStateException("ONNX Runtime returned no tensor '" + name + "'");
                }
                // a heap copy whose bytes are in native order (the copy's order flag is not): set it
                out.add(((OnnxTensor) v.get()).getByteBuffer().order(ByteOrder.nativeOrder()));
            }
            return out;
        }
    }

    /** A tensor over the direct buffer (no copy), of the input's dtype. */
    private OnnxTensor tensor(ByteBuffer data, long[] shape, DType type) throws OrtException {
        switch (type) {
            case FLOAT32:
                return OnnxTensor.createTensor(env, data.asFloatBuffer(), shape);
            case INT8:
                return OnnxTensor.createTensor(env, data, shape); // a ByteBuffer is INT8 by default
            case UINT8:
                return OnnxTensor.createTensor(env, data, shape, OnnxJavaType.UINT8);
            case INT16:
                return OnnxTensor.createTensor(env, data.asShortBuffer(), shape);
            case FLOAT16:
                return OnnxTensor.createTensor(env, data, shape, OnnxJavaType.FLOAT16);
            default:
                throw new IllegalArgumentException("input dtype " + type + " is not supported by this demo");
        }
    }

    @Override
    public void close() {
        try {
            session.close();
            options.close();
        } catch (Exception e) { // OrtException on some versions
            throw new IllegalStateException(e);
        }
    }
}
