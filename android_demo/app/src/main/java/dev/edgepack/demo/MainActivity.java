package dev.edgepack.demo;

import android.app.Activity;
import android.content.Intent;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.drawable.BitmapDrawable;
import android.net.Uri;
import android.os.Bundle;
import android.util.Log;
import android.widget.Button;
import android.widget.ImageView;
import android.widget.TextView;
import dev.edgepack.demo.core.GoldenCheck;
import dev.edgepack.demo.core.Golden;
import dev.edgepack.demo.core.Manifest;
import dev.edgepack.demo.core.ManifestKeys;
import dev.edgepack.demo.core.ModelRunner;
import dev.edgepack.demo.core.Pixels;
import dev.edgepack.demo.core.Postprocessor;
import dev.edgepack.demo.core.Prediction;
import dev.edgepack.demo.core.Preprocessor;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Loads the artifact edgepack's manifest names (default_artifact) from assets/edgepack/ with the
 * runtime the manifest names, runs the golden vectors at start (PASS/FAIL with the worst error),
 * and classifies the first golden picture or one picked from the gallery (top-k and timing).
 *
 * <p>All model work runs on one background thread; the fields below are touched only there.
 */
public class MainActivity extends Activity {
    private static final String TAG = "EdgepackDemo";
    /** Optional intent extra: run this artifact file instead of the manifest's default_artifact. */
    static final String EXTRA_ARTIFACT = "artifact";
    private static final int REQUEST_PICK_IMAGE = 1;
    private static final int TOP_K = 3;
    private static final int TIMED_RUNS = 10;
    private static final int PASS_COLOR = 0xFF1B5E20;
    private static final int FAIL_COLOR = 0xFFB71C1C;
    private static final int BUSY_COLOR = 0xFF616161;
    private static final int TEXT_COLOR = 0xFF212121;

    private final ExecutorService worker = Executors.newSingleThreadExecutor();

    private TextView modelInfo;
    private TextView selfCheck;
    private TextView result;
    private ImageView image;
    private Button runSelfCheck;
    private Button goldenSample;
    private Button pickImage;

    private String requestedArtifact;

    // worker thread only
    private EdgepackAssets assets;
    private Manifest manifest;
    private Manifest.Artifact artifact;
    private Golden golden;
    private ModelRunner runner;
    private Preprocessor preprocessor;
    private Postprocessor postprocessor;

    /** A step on the worker thread that may fail. */
    private interface Step {
        void run() throws Exception;
    }

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        modelInfo = findViewById(R.id.model_info);
        selfCheck = findViewById(R.id.self_check);
        result = findViewById(R.id.result);
        image = findViewById(R.id.image);
        runSelfCheck = findViewById(R.id.run_self_check);
        goldenSample = findViewById(R.id.golden_sample);
        pickImage = findViewById(R.id.pick_image);
        // e.g. adb shell am start -n dev.edgepack.demo/.MainActivity --es artifact digits_cnn.fp32.ort
        requestedArtifact = getIntent().getStringExtra(EXTRA_ARTIFACT);

        runSelfCheck.setOnClickListener(v -> background(this::runGoldenCheck));
        goldenSample.setOnClickListener(v -> background(this::classifyGoldenSample));
        pickImage.setOnClickListener(v -> pickFromGallery());
        background(this::start);
    }

    @Override
    protected void onDestroy() {
        worker.execute(() -> {
            if (runner != null) {
                runner.close();
                runner = null;
            }
        });
        worker.shutdown();
        super.onDestroy();
    }

    private void background(Step step) {
        worker.execute(() -> {
            try {
                step.run();
            } catch (Exception | LinkageError e) {
                Log.e(TAG, "failed", e);
                ui(() -> {
                    result.setTextColor(FAIL_COLOR);
                    result.setText(getString(R.string.app_name) + ": " + e);
                });
            }
        });
    }

    private void ui(Runnable r) {
        runOnUiThread(() -> {
            if (!isDestroyed()) {
                r.run();
            }
        });
    }

    /** Load manifest, golden vectors and model; then self-check and classify the golden sample. */
    private void start() throws Exception {
        assets = new EdgepackAssets(getAssets());
        if (!assets.hasManifest()) {
            ui(() -> modelInfo.setText(R.string.no_assets));
            return;
        }
        manifest = Manifest.parse(assets.text(ManifestKeys.MANIFEST_FILE));
        artifact = manifest.choose(requestedArtifact); // default_artifact unless the intent names one
        golden = manifest.goldenFile == null ? null : Golden.parse(assets.text(manifest.goldenFile));
        preprocessor = new Preprocessor(manifest, artifact);
        postprocessor = new Postprocessor(manifest, artifact);
        long t0 = System.nanoTime();
        runner = Runners.open(assets, artifact);
        double loadMs = (System.nanoTime() - t0) / 1e6;

        String info = String.format(Locale.ROOT,
                "Model %s (edgepack target %s)%nArtifact %s: %s %s%nRuntime %s (%s), %d threads, loaded in %.1f ms%n"
                        + "Input %s%nPreprocess %s",
                manifest.modelName, manifest.target, artifact.file, artifact.format, artifact.precision, artifact.runtime,
                artifact.androidLibrary, Runners.threads(), loadMs, preprocessor.input(), manifest.preprocess);
        Log.i(TAG, info);
        ui(() -> {
            modelInfo.setText(info);
            runSelfCheck.setEnabled(true);
            goldenSample.setEnabled(true);
            pickImage.setEnabled(true);
        });
        runGoldenCheck(); // at every start: proves this build computes what edgepack validated
        classifyGoldenSample();
    }

    private void runGoldenCheck() {
        if (golden == null) {
            ui(() -> selfCheck.setText("The manifest names no golden vectors; nothing to check."));
            return;
        }
        ui(() -> {
            selfCheck.setTextColor(BUSY_COLOR);
            selfCheck.setText(R.string.self_check_running);
        });
        GoldenCheck.Report report = new GoldenCheck(manifest, artifact, golden).run(assets, runner);
        String text = report.summary();
        // one greppable line for scripted device runs: adb logcat -s EdgepackDemo
        Log.i(TAG, "self-check " + (report.passed() ? "PASS" : "FAIL") + ": " + text.replace('\n', ' '));
        ui(() -> {
            selfCheck.setTextColor(report.passed() ? PASS_COLOR : FAIL_COLOR);
            selfCheck.setText(text);
        });
    }

    private void classifyGoldenSample() throws Exception {
        if (golden == null || golden.cases.isEmpty() || golden.cases.get(0).image == null) {
            ui(() -> result.setText("golden.json has no sample picture; pick one from the gallery."));
            return;
        }
        Golden.Case c = golden.cases.get(0);
        String what = c.image + (c.label != null ? " (true class: " + manifest.label(c.label) + ")" : "");
        classify(assets.load(c.image), what);
    }

    private void pickFromGallery() {
        Intent pick = new Intent(Intent.ACTION_GET_CONTENT).setType("image/*").addCategory(Intent.CATEGORY_OPENABLE);
        startActivityForResult(Intent.createChooser(pick, getString(R.string.pick_image)), REQUEST_PICK_IMAGE);
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        super.onActivityResult(requestCode, resultCode, data);
        if (requestCode == REQUEST_PICK_IMAGE && resultCode == RESULT_OK && data != null && data.getData() != null) {
            Uri uri = data.getData();
            background(() -> classify(decodeAtModelSize(uri),
                    String.format(Locale.ROOT, "picked picture, resized to %dx%d", preprocessor.width(), preprocessor.height())));
        }
    }

    /**
     * Decode a picked picture and resize it to the model's size (whole picture, no crop, like
     * edgepack's Pillow resize; Android's bilinear filter is not Pillow's, so such pictures are
     * not bit-exact with the host: only the golden pictures, already at size, are).
     */
    private Pixels decodeAtModelSize(Uri uri) throws IOException {
        int w = preprocessor.width();
        int h = preprocessor.height();
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            BitmapFactory.decodeStream(in, null, bounds);
        }
        int sample = 1;
        while (bounds.outWidth / (sample * 2) >= w && bounds.outHeight / (sample * 2) >= h) {
            sample *= 2;
        }
        BitmapFactory.Options o = new BitmapFactory.Options();
        o.inSampleSize = sample;
        o.inPreferredConfig = Bitmap.Config.ARGB_8888;
        Bitmap decoded;
        try (InputStream in = getContentResolver().openInputStream(uri)) {
            decoded = BitmapFactory.decodeStream(in, null, o);
        }
        if (decoded == null) {
            throw new IOException(uri + ": not a picture BitmapFactory can decode");
        }
        Bitmap scaled = Bitmap.createScaledBitmap(decoded, w, h, true);
        return EdgepackAssets.pixels(scaled.getConfig() == Bitmap.Config.ARGB_8888 ? scaled : scaled.copy(Bitmap.Config.ARGB_8888, false));
    }

    private void classify(Pixels px, String what) throws Exception {
        long t0 = System.nanoTime();
        ByteBuffer input = preprocessor.inputBuffer(px);
        double preMs = (System.nanoTime() - t0) / 1e6;

        t0 = System.nanoTime();
        List<ByteBuffer> outputs = runner.run(input);
        double firstMs = (System.nanoTime() - t0) / 1e6;
        long[] times = new long[TIMED_RUNS];
        for (int i = 0; i < TIMED_RUNS; i++) {
            long t = System.nanoTime();
            outputs = runner.run(input);
            times[i] = System.nanoTime() - t;
        }
        Arrays.sort(times);
        double medianMs = times[TIMED_RUNS / 2] / 1e6;

        Postprocessor.Classification c = postprocessor.classify(outputs, TOP_K);
        StringBuilder text = new StringBuilder(what).append('\n');
        for (int i = 0; i < c.top.size(); i++) {
            Prediction p = c.top.get(i);
            text.append(String.format(Locale.ROOT, "%d. %-12s %5.1f%%  (score %.4g)%n", i + 1, p.label, 100.0 * p.probability, p.score));
        }
        text.append(String.format(Locale.ROOT, "inference %.2f ms (median of %d runs; first run %.2f ms)%npreprocessing %.2f ms, %s, %d threads",
                medianMs, TIMED_RUNS, firstMs, preMs, artifact.runtime, Runners.threads()));
        String shown = text.toString();
        Log.i(TAG, shown.replace('\n', ' '));

        Bitmap bmp = Bitmap.createBitmap(px.argb, px.width, px.height, Bitmap.Config.ARGB_8888);
        ui(() -> {
            BitmapDrawable d = new BitmapDrawable(getResources(), bmp);
            d.setFilterBitmap(false); // show the model's few pixels as crisp blocks
            image.setImageDrawable(d);
            result.setTextColor(TEXT_COLOR);
            result.setText(shown);
        });
    }
}
