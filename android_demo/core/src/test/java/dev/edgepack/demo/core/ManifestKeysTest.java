package dev.edgepack.demo.core;

import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** Every key the Java code reads (ManifestKeys) is one edgepack writes, in the files it generated. */
public class ManifestKeysTest {

    /** Where a path was found, across all documents. */
    private static final class Walk {
        boolean found;
    }

    private static void walk(Object node, String[] keys, int at, Walk w) {
        if (at == keys.length) {
            w.found = true;
            return;
        }
        if (!(node instanceof JSONObject)) { // includes a null object on the way
            return;
        }
        String key = keys[at];
        boolean each = key.endsWith("[]");
        if (each) {
            key = key.substring(0, key.length() - 2);
        }
        JSONObject o = (JSONObject) node;
        if (!o.has(key)) {
            return;
        }
        Object v = o.opt(key);
        if (!each) {
            walk(v, keys, at + 1, w);
        } else if (v instanceof JSONArray) {
            JSONArray arr = (JSONArray) v;
            for (int i = 0; i < arr.length(); i++) {
                walk(arr.opt(i), keys, at + 1, w);
            }
        }
    }

    private static Walk find(List<JSONObject> docs, String path) {
        Walk w = new Walk();
        for (JSONObject d : docs) {
            walk(d, path.split("\\."), 0, w);
        }
        return w;
    }

    private static List<String> missing(List<JSONObject> docs, List<String> paths) {
        List<String> out = new ArrayList<>();
        for (String p : paths) {
            if (!find(docs, p).found) {
                out.add(p);
            }
        }
        return out;
    }

    private static List<JSONObject> manifests() throws Exception {
        List<JSONObject> out = new ArrayList<>();
        for (java.io.File f : AssetFolders.all()) {
            out.add(AssetFolders.load(f).manifestObject());
        }
        return out;
    }

    @Test
    public void everyManifestKeyTheJavaReadsIsInTheGeneratedManifest() throws Exception {
        List<String> miss = missing(manifests(), ManifestKeys.MANIFEST_PATHS);
        assertTrue("manifest.json paths the Java reads but edgepack did not write: " + miss, miss.isEmpty());
    }

    @Test
    public void everyGoldenKeyTheJavaReadsIsInTheGeneratedGolden() throws Exception {
        List<JSONObject> docs = new ArrayList<>();
        for (java.io.File f : AssetFolders.all()) {
            docs.add(new JSONObject(AssetFolders.load(f).goldenJson));
        }
        List<String> miss = missing(docs, ManifestKeys.GOLDEN_PATHS);
        assertTrue("golden.json paths the Java reads but edgepack did not write: " + miss, miss.isEmpty());
    }

    /**
     * quantization.scale / zero_point exist only for integer I/O (LiteRT int8). Every non-null
     * quantization object is checked; the test is skipped (not passed) while no generated
     * manifest has one.
     */
    @Test
    public void quantizationKeysTheJavaReadsAreInTheGeneratedManifest() throws Exception {
        List<String> problems = new ArrayList<>();
        int seen = 0;
        for (JSONObject d : manifests()) {
            JSONArray arts = d.getJSONArray(ManifestKeys.ARTIFACTS);
            for (int i = 0; i < arts.length(); i++) {
                JSONObject a = arts.getJSONObject(i);
                for (String io : new String[] {ManifestKeys.ART_INPUTS, ManifestKeys.ART_OUTPUTS}) {
                    JSONArray ts = a.getJSONArray(io);
                    for (int j = 0; j < ts.length(); j++) {
                        JSONObject q = ts.getJSONObject(j).optJSONObject(ManifestKeys.IO_QUANTIZATION);
                        if (q == null) {
                            continue;
                        }
                        seen++;
                        for (String k : ManifestKeys.QUANTIZATION_KEYS) {
                            if (!q.has(k)) {
                                problems.add(a.optString(ManifestKeys.ART_FILE) + " " + io + "[" + j + "].quantization." + k);
                            }
                        }
                    }
                }
            }
        }
        // tests/android builds an int8_io .tflite for the RGB model, so quantised I/O must be there.
        assertTrue("no generated manifest has integer (quantised) I/O; tests/android should build an int8_io artifact", seen > 0);
        assertTrue("quantization keys the Java reads but edgepack did not write: " + problems, problems.isEmpty());
    }
}
