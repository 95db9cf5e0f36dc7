package dev.edgepack.demo;

import dev.edgepack.demo.core.Manifest;
import dev.edgepack.demo.core.ModelRunner;
import dev.edgepack.demo.core.TensorSpec;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;

/**
 * Runs a .tflite artifact with LiteRT's Interpreter (com.google.ai.edge.litert:litert; XNNPACK
 * is its default CPU path, as on edgepack's host). Inputs and outputs are matched by the names
 * the manifest gives: the model's signature names when it has a signature, else tensor names,
 * else position.
 */
final class LiteRtRunner implements ModelRunner {
    private final Interpreter interpreter;
    private final Manifest.Artifact artifact;
    private final String signature; // null: run by tensor index
    private final int[] outputIndex;
    // output buffers, allocated once and reused: valid until the next run (see ModelRunner)
    private final List<ByteBuffer> outputs = new ArrayList<>();
    private final List<ByteBuffer> outputsView = Collections.unmodifiableList(outputs);
    private final Map<String, Object> bySignatureName = new LinkedHashMap<>();
    private final Map<Integer, Object> byIndex = new HashMap<>();

    LiteRtRunner(ByteBuffer model, Manifest.Artifact artifact, int threads) {
        Interpreter.Options options = new Interpreter.Options();
        options.setNumThreads(threads);
        interpreter = new Interpreter(model, options);
        this.artifact = artifact;
        TensorSpec in = artifact.imageInput();
        if (interpreter.getInputTensorCount() != 1) {
            throw new IllegalStateException(artifact.file + " has " + interpreter.getInputTensorCount() + " inputs; this demo feeds one image");
        }
        signature = matchingSignature();
        outputIndex = new int[artifact.outputs.size()];
        for (int i = 0; i < outputIndex.length; i++) {
            outputIndex[i] = signature != null ? -1 : outputIndexOf(artifact.outputs.get(i).name, i);
        }
        Tensor t = signature != null ? interpreter.getInputTensorFromSignature(in.name, signature) : interpreter.getInputTensor(0);
        if (t.numBytes() != in.byteSize()) {
            throw new IllegalStateException(artifact.file + ": the interpreter's input " + t.name() + " " + Arrays.toString(t.shape())
                    + " " + t.dataType() + " takes " + t.numBytes() + " bytes; the manifest's " + in + " makes " + in.byteSize());
        }
        for (int i = 0; i < artifact.outputs.size(); i++) {
            String name = artifact.outputs.get(i).name;
            Tensor o = signature != null ? interpreter.getOutputTensorFromSignature(name, signature) : interpreter.getOutputTensor(outputIndex[i]);
            ByteBuffer b = allocate(o);
            outputs.add(b);
            if (signature != null) {
                bySignatureName.put(name, b);
            } else {
                byIndex.put(outputIndex[i], b);
            }
        }
    }

    /** The signature whose input and output names are the manifest's, or null. */
    private String matchingSignature() {
        for (String key : interpreter.getSignatureKeys()) {
            List<String> ins = Arrays.asList(interpreter.getSignatureInputs(key));
            List<String> outs = Arrays.asList(interpreter.getSignatureOutputs(key));
            boolean all = ins.contains(artifact.imageInput().name);
            for (TensorSpec o : artifact.outputs) {
                all &= outs.contains(o.name);
            }
            if (all) {
                return key;
            }
        }
        return null;
    }

    private int outputIndexOf(String name, int fallback) {
        for (int i = 0; i < interpreter.getOutputTensorCount(); i++) {
            Tensor t = interpreter.getOutputTensor(i);
            if (name.equals(t.name())) {
                return i;
            }
        }
        return fallback;
    }

    @Override
    public List<ByteBuffer> run(ByteBuffer in) {
        ByteBuffer data = in.duplicate().order(ByteOrder.nativeOrder());
        for (ByteBuffer b : outputs) {
            ((Buffer) b).rewind(); // the interpreter writes from the position and advances it
        }
        if (signature != null) {
            interpreter.runSignature(Collections.singletonMap(artifact.imageInput().name, data), bySignatureName, signature);
        } else {
            interpreter.runForMultipleInputsOutputs(new Object[] {data}, byIndex); // the one input
        }
        for (ByteBuffer b : outputs) {
            ((Buffer) b).rewind();
        }
        return outputsView;
    }

    private static ByteBuffer allocate(Tensor t) {
        return ByteBuffer.allocateDirect(t.numBytes()).order(ByteOrder.nativeOrder());
    }

    @Override
    public void close() {
        interpreter.close();
    }
}
