package dev.edgepack.demo.core;

import java.util.Locale;

/** One class of a classification: its index, label, raw score and probability. */
public final class Prediction {
    public final int index;
    public final String label;
    public final float score;
    public final float probability;

    public Prediction(int index, String label, float score, float probability) {
        this.index = index;
        this.label = label;
        this.score = score;
        this.probability = probability;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "%s (#%d) %.1f%% [score %.4g]", label, index, 100.0 * probability, score);
    }
}
