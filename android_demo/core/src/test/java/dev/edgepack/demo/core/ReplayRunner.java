package dev.edgepack.demo.core;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * NOT a model: a ModelRunner that replays the raw outputs edgepack recorded in golden.json, case
 * after case (GoldenCheck runs each case once, in order). There is no Android runtime on the JVM,
 * so this exercises preprocessing, quantisation, postprocessing and the comparison logic, not the
 * model; the app's OrtRunner / LiteRtRunner run the real artifact on the device.
 */
final class ReplayRunner implements ModelRunner {
    private final Golden.ArtifactGolden golden;
    private int next;
    final List<ByteBuffer> inputsSeen = new ArrayList<>();

    ReplayRunner(Golden.ArtifactGolden golden) {
        this.golden = golden;
    }

    @Override
    public List<ByteBuffer> run(ByteBuffer input) {
        inputsSeen.add(input);
        Golden.Result r = golden.results.get(next++ % golden.results.size());
        List<ByteBuffer> out = new ArrayList<>();
        for (Golden.GoldenTensor t : r.outputs) {
            out.add(t.toBuffer());
        }
        return out;
    }
}
