package dev.edgepack.demo.core;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * The single list of names the demo reads from edgepack's Android assets: the entry file name,
 * every key of manifest.json and golden.json that the Java code looks up, and nothing else.
 *
 * <p>The parsers ({@link Manifest}, {@link Golden}) use these constants, and the JVM tests assert
 * that every path below is present in the manifest.json and golden.json that edgepack generates
 * (see ManifestKeysTest). All other file names (artifacts, golden.json, golden images) come from
 * the manifest, never from the code.
 *
 * <p>Path syntax for {@link #MANIFEST_PATHS} and {@link #GOLDEN_PATHS}: keys joined by '.', and
 * {@code []} after a key whose value is an array of objects (each element is checked).
 */
public final class ManifestKeys {
    private ManifestKeys() {}

    /** The one asset name the app knows: everything else is named inside it. */
    public static final String MANIFEST_FILE = "manifest.json";
    /** The schema major version this code understands (manifest "schema_version"). */
    public static final String SUPPORTED_SCHEMA_MAJOR = "1";

    // manifest.json, top level
    public static final String SCHEMA_VERSION = "schema_version";
    public static final String MODEL = "model";
    public static final String MODEL_NAME = "name";
    public static final String TARGET = "target";
    public static final String LABELS = "labels";
    public static final String PREPROCESS = "preprocess";
    public static final String ARTIFACTS = "artifacts";
    public static final String DEFAULT_ARTIFACT = "default_artifact";
    public static final String GOLDEN = "golden";

    // manifest.json, preprocess
    public static final String PP_SIZE = "size";
    public static final String PP_LAYOUT = "layout";
    public static final String PP_CHANNELS = "channels";
    public static final String PP_SCALE = "scale";
    public static final String PP_MEAN = "mean";
    public static final String PP_STD = "std";

    // manifest.json, artifacts[]
    public static final String ART_FILE = "file";
    public static final String ART_FORMAT = "format";
    public static final String ART_PRECISION = "precision";
    public static final String ART_RUNTIME = "runtime";
    public static final String ART_ANDROID_LIBRARY = "android_library";
    public static final String ART_INPUTS = "inputs";
    public static final String ART_OUTPUTS = "outputs";

    // manifest.json, artifacts[].inputs[] / outputs[]
    public static final String IO_NAME = "name";
    public static final String IO_SHAPE = "shape";
    public static final String IO_DTYPE = "dtype";
    public static final String IO_LAYOUT = "layout";
    public static final String IO_QUANTIZATION = "quantization";
    public static final String Q_SCALE = "scale";
    public static final String Q_ZERO_POINT = "zero_point";

    // golden.json
    public static final String G_CASES = "cases";
    public static final String G_CASE_IMAGE = "image";
    public static final String G_CASE_LABEL = "label";
    public static final String G_CASE_INPUTS = "inputs";
    public static final String G_ARTIFACTS = "artifacts";
    public static final String G_ART_FILE = "file";
    public static final String G_ART_TOLERANCE = "tolerance";
    public static final String G_TOL_MAX_ABS = "max_abs";
    public static final String G_ART_RESULTS = "results";
    public static final String G_RES_INPUTS = "inputs";
    public static final String G_RES_OUTPUTS = "outputs";
    public static final String G_RES_SCORES = "scores";
    public static final String G_RES_TOP1 = "top1";
    // golden.json, a tensor ({name, shape, dtype, data})
    public static final String T_NAME = "name";
    public static final String T_SHAPE = "shape";
    public static final String T_DTYPE = "dtype";
    public static final String T_DATA = "data";

    private static final String IN = ARTIFACTS + "[]." + ART_INPUTS + "[].";
    private static final String OUT = ARTIFACTS + "[]." + ART_OUTPUTS + "[].";

    /** Every manifest.json path the Java code reads, except the keys inside quantization ({@link #QUANTIZATION_KEYS}). */
    public static final List<String> MANIFEST_PATHS = Collections.unmodifiableList(Arrays.asList(
            SCHEMA_VERSION,
            MODEL, MODEL + "." + MODEL_NAME,
            TARGET,
            LABELS,
            PREPROCESS,
            PREPROCESS + "." + PP_SIZE,
            PREPROCESS + "." + PP_LAYOUT,
            PREPROCESS + "." + PP_CHANNELS,
            PREPROCESS + "." + PP_SCALE,
            PREPROCESS + "." + PP_MEAN,
            PREPROCESS + "." + PP_STD,
            ARTIFACTS,
            ARTIFACTS + "[]." + ART_FILE,
            ARTIFACTS + "[]." + ART_FORMAT,
            ARTIFACTS + "[]." + ART_PRECISION,
            ARTIFACTS + "[]." + ART_RUNTIME,
            ARTIFACTS + "[]." + ART_ANDROID_LIBRARY,
            ARTIFACTS + "[]." + ART_INPUTS,
            ARTIFACTS + "[]." + ART_OUTPUTS,
            IN + IO_NAME, IN + IO_SHAPE, IN + IO_DTYPE, IN + IO_LAYOUT, IN + IO_QUANTIZATION,
            OUT + IO_NAME, OUT + IO_SHAPE, OUT + IO_DTYPE, OUT + IO_LAYOUT, OUT + IO_QUANTIZATION,
            DEFAULT_ARTIFACT,
            GOLDEN));

    /**
     * The keys read inside every non-null artifacts[].inputs[]/outputs[].quantization object.
     * edgepack writes such objects only for integer I/O (LiteRT int8 artifacts); for float I/O
     * "quantization" is null, so these are checked whenever the generated assets hold one.
     */
    public static final List<String> QUANTIZATION_KEYS = Collections.unmodifiableList(Arrays.asList(Q_SCALE, Q_ZERO_POINT));

    private static final String RES = G_ARTIFACTS + "[]." + G_ART_RESULTS + "[].";

    /** Every golden.json path the Java code reads. */
    public static final List<String> GOLDEN_PATHS = Collections.unmodifiableList(Arrays.asList(
            G_CASES,
            G_CASES + "[]." + G_CASE_IMAGE,
            G_CASES + "[]." + G_CASE_LABEL,
            G_CASES + "[]." + G_CASE_INPUTS,
            G_CASES + "[]." + G_CASE_INPUTS + "[]." + T_NAME,
            G_CASES + "[]." + G_CASE_INPUTS + "[]." + T_SHAPE,
            G_CASES + "[]." + G_CASE_INPUTS + "[]." + T_DTYPE,
            G_CASES + "[]." + G_CASE_INPUTS + "[]." + T_DATA,
            G_ARTIFACTS,
            G_ARTIFACTS + "[]." + G_ART_FILE,
            G_ARTIFACTS + "[]." + G_ART_TOLERANCE,
            G_ARTIFACTS + "[]." + G_ART_TOLERANCE + "." + G_TOL_MAX_ABS,
            G_ARTIFACTS + "[]." + G_ART_RESULTS,
            RES + G_RES_INPUTS,
            RES + G_RES_INPUTS + "[]." + T_NAME,
            RES + G_RES_INPUTS + "[]." + T_SHAPE,
            RES + G_RES_INPUTS + "[]." + T_DTYPE,
            RES + G_RES_INPUTS + "[]." + T_DATA,
            RES + G_RES_OUTPUTS,
            RES + G_RES_OUTPUTS + "[]." + T_NAME,
            RES + G_RES_OUTPUTS + "[]." + T_SHAPE,
            RES + G_RES_OUTPUTS + "[]." + T_DTYPE,
            RES + G_RES_OUTPUTS + "[]." + T_DATA,
            RES + G_RES_SCORES,
            RES + G_RES_TOP1));
}
