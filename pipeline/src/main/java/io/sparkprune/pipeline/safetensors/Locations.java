package io.sparkprune.pipeline.safetensors;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Optional;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;

/** Tells local paths from Hadoop URIs. */
final class Locations {
    /** A URI scheme of two or more characters (one letter would be a Windows drive, {@code C:}). */
    private static final Pattern SCHEME = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]+:.*", Pattern.DOTALL);

    private Locations() {
    }

    /**
     * @param uriOrPath a plain path, a {@code file:} URI, or another URI
     * @return the local path for a plain path or a {@code file:} URI; empty for other schemes
     */
    static Optional<Path> localPath(String uriOrPath) {
        if (!SCHEME.matcher(uriOrPath).matches()) {
            return Optional.of(Paths.get(uriOrPath));
        }
        org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(uriOrPath);
        String scheme = p.toUri().getScheme();
        if (scheme != null && scheme.equalsIgnoreCase("file")) {
            return Optional.of(Paths.get(p.toUri().getPath()));
        }
        return Optional.empty();
    }

    /** @return whether Hadoop's FileSystem cache is disabled for the scheme (then we own the instance) */
    static boolean cacheDisabled(String scheme, Configuration conf) {
        return scheme != null && conf.getBoolean("fs." + scheme + ".impl.disable.cache", false);
    }
}
