package dev.edgepack.demo.core;

/** The manifest or golden file is missing something the demo needs, or says something it cannot do. */
public class ManifestException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ManifestException(String message) {
        super(message);
    }

    public ManifestException(String message, Throwable cause) {
        super(message, cause);
    }
}
