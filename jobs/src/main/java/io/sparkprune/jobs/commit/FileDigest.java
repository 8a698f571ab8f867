package io.sparkprune.jobs.commit;

import java.util.Objects;

/**
 * Size and SHA-256 of a file the marker lists besides the shards ({@code _metrics.json}).
 *
 * @param file file name inside the layer's staging directory
 * @param bytes size in bytes
 * @param sha256 SHA-256, 64 lower-case hex digits
 */
public record FileDigest(String file, long bytes, String sha256) {
    /**
     * Null checks.
     *
     * @param file file name inside the layer's staging directory
     * @param bytes size in bytes
     * @param sha256 SHA-256, 64 lower-case hex digits
     */
    public FileDigest {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(sha256, "sha256");
    }
}
