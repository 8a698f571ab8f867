package io.sparkprune.pipeline.formats;

import io.sparkprune.kernels.InvalidInputException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.function.Consumer;

/**
 * Writes an output directory all-or-nothing: the body fills a hidden temporary sibling
 * ({@code .<name>.tmp-<nanos>}), which is renamed to the target only when the body returns
 * normally; if it throws, the temporary directory is deleted and the target never appears.
 */
public final class AtomicDirectory {
    private AtomicDirectory() {
    }

    /**
     * @param target the directory to create; must not exist; its parent is created if missing
     * @param body writes the directory's files into the path it is given (the temporary directory)
     * @throws InvalidInputException when the target already exists
     * @throws UncheckedIOException when creating or renaming fails (nothing is left behind)
     * @throws RuntimeException whatever the body throws (nothing is left behind)
     */
    public static void write(Path target, Consumer<Path> body) {
        Path abs = target.toAbsolutePath().normalize();
        if (Files.exists(abs)) {
            throw new InvalidInputException(abs + " already exists; choose a new output directory or remove it first");
        }
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + System.nanoTime());
        boolean done = false;
        try {
            Files.createDirectories(tmp);
            body.accept(tmp);
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs);
            }
            done = true;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write output directory " + abs + ": " + e.getMessage(), e);
        } finally {
            if (!done) {
                deleteTree(tmp);
            }
        }
    }

    /**
     * Best-effort recursive delete.
     *
     * @param dir directory to delete (absent is fine)
     */
    static void deleteTree(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                if (Files.isDirectory(p)) {
                    deleteTree(p);
                } else {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
        } catch (IOException ignored) {
            // best effort: the directory is hidden and named .tmp-*
        }
    }
}
