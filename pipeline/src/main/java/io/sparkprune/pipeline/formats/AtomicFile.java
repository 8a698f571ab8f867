package io.sparkprune.pipeline.formats;

import io.sparkprune.kernels.InvalidInputException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Writes one local file all-or-nothing, the file-level twin of {@link AtomicDirectory}: the body
 * writes a hidden temporary sibling ({@code .<name>.tmp-<nanos>}), which is renamed onto the target
 * (atomically where the file system can) only when the body returns normally; otherwise it is
 * deleted and the target is untouched.
 */
public final class AtomicFile {
    private AtomicFile() {
    }

    /** Writes the file's content to the path it is given (the temporary sibling). */
    @FunctionalInterface
    public interface Body {
        /**
         * @param tmp where to write; does not exist yet
         * @throws IOException when writing fails
         */
        void write(Path tmp) throws IOException;
    }

    /**
     * @param file the file to write; its parent directory must exist
     * @param replace whether an existing file may be replaced; when false an existing file is refused
     * @param body writes the content
     * @throws InvalidInputException when {@code replace} is false and the file exists
     * @throws UncheckedIOException when writing or renaming fails (nothing is left behind)
     * @throws RuntimeException whatever the body throws (nothing is left behind)
     */
    public static void write(Path file, boolean replace, Body body) {
        Path abs = file.toAbsolutePath().normalize();
        if (!replace && Files.exists(abs)) {
            throw new InvalidInputException(abs + " already exists; choose a new output file or remove it first");
        }
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + System.nanoTime());
        try {
            body.write(tmp);
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + abs + ": " + e.getMessage(), e);
        } finally {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // best effort: the file is hidden and named .tmp-*
            }
        }
    }
}
