package dev.edgepack.demo.core;

import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/** Small helpers over org.json (the API Android ships) that name the missing key in their errors. */
final class Json {
    private Json() {}

    static JSONObject parse(String text, String what) {
        try {
            return new JSONObject(text);
        } catch (JSONException e) {
            throw new ManifestException(what + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    static Object required(JSONObject o, String key, String where) {
        if (!o.has(key)) {
            throw new ManifestException(where + " has no '" + key + "'");
        }
        try {
            return o.get(key);
        } catch (JSONException e) {
            throw new ManifestException(where + "." + key + ": " + e.getMessage(), e);
        }
    }

    static String string(JSONObject o, String key, String where) {
        Object v = required(o, key, where);
        if (v == JSONObject.NULL) {
            throw new ManifestException(where + "." + key + " is null");
        }
        return v.toString();
    }

    /** The string at key, or null when the key is missing or null. */
    static String optString(JSONObject o, String key) {
        if (o.isNull(key)) {
            return null;
        }
        return o.opt(key).toString();
    }

    static JSONObject object(JSONObject o, String key, String where) {
        Object v = required(o, key, where);
        if (!(v instanceof JSONObject)) {
            throw new ManifestException(where + "." + key + " is not an object");
        }
        return (JSONObject) v;
    }

    /** The object at key, or null when the key is missing or null. */
    static JSONObject optObject(JSONObject o, String key, String where) {
        if (o.isNull(key)) {
            return null;
        }
        return object(o, key, where);
    }

    static JSONArray array(JSONObject o, String key, String where) {
        Object v = required(o, key, where);
        if (!(v instanceof JSONArray)) {
            throw new ManifestException(where + "." + key + " is not a list");
        }
        return (JSONArray) v;
    }

    static JSONObject objectAt(JSONArray a, int i, String where) {
        Object v = a.opt(i);
        if (!(v instanceof JSONObject)) {
            throw new ManifestException(where + "[" + i + "] is not an object");
        }
        return (JSONObject) v;
    }

    static double number(JSONObject o, String key, String where) {
        Object v = required(o, key, where);
        if (!(v instanceof Number)) {
            throw new ManifestException(where + "." + key + " is not a number: " + v);
        }
        return ((Number) v).doubleValue();
    }

    static double[] doubles(JSONArray a, String where) {
        double[] out = new double[a.length()];
        for (int i = 0; i < out.length; i++) {
            Object v = a.opt(i);
            if (!(v instanceof Number)) {
                throw new ManifestException(where + "[" + i + "] is not a number: " + v);
            }
            out[i] = ((Number) v).doubleValue();
        }
        return out;
    }

    static long[] longs(JSONArray a, String where) {
        long[] out = new long[a.length()];
        for (int i = 0; i < out.length; i++) {
            Object v = a.opt(i);
            if (!(v instanceof Number)) {
                throw new ManifestException(where + "[" + i + "] is not a number: " + v);
            }
            out[i] = ((Number) v).longValue();
        }
        return out;
    }

    /** A shape: null entries (unknown dimensions) become -1. */
    static int[] shape(JSONArray a, String where) {
        int[] out = new int[a.length()];
        for (int i = 0; i < out.length; i++) {
            Object v = a.opt(i);
            if (v == null || v == JSONObject.NULL) {
                out[i] = -1;
            } else if (v instanceof Number) {
                out[i] = ((Number) v).intValue();
            } else {
                throw new ManifestException(where + "[" + i + "] is not a dimension: " + v);
            }
        }
        return out;
    }
}
