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
        try (Staging s = begin(target)) {
            body.accept(s.dir());
            s.commit();
        }
    }

    /**
     * Starts writing a directory in steps (e.g. parts written by other processes into
     * {@link Staging#dir()}, then a manifest): the explicit form of {@link #write}.
     *
     * @param target the directory to create; must not exist; its parent is created if missing
     * @return the staging area; {@link Staging#commit()} renames it into place, {@link Staging#close()}
     *     without a commit deletes it
     * @throws InvalidInputException when the target already exists
     * @throws UncheckedIOException when the temporary directory cannot be created
     */
    public static Staging begin(Path target) {
        Path abs = target.toAbsolutePath().normalize();
        if (Files.exists(abs)) {
            throw new InvalidInputException(abs + " already exists; choose a new output directory or remove it first");
        }
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp-" + System.nanoTime());
        try {
            Files.createDirectories(tmp);
        } catch (IOException e) {
            deleteTree(tmp);
            throw new UncheckedIOException("cannot create " + tmp + ": " + e.getMessage(), e);
        }
        return new Staging(abs, tmp);
    }

    /** A hidden temporary directory that becomes the target on {@link #commit()}, or disappears on {@link #close()}. */
    public static final class Staging implements AutoCloseable {
        private final Path target;
        private final Path dir;
        private boolean committed;

        private Staging(Path target, Path dir) {
            this.target = target;
            this.dir = dir;
        }

        /** @return the temporary directory to fill ({@code .<name>.tmp-<nanos>} beside the target) */
        public Path dir() {
            return dir;
        }

        /** @return the final directory (absolute) */
        public Path target() {
            return target;
        }

        /**
         * Renames the temporary directory to the target (atomically where the file system can).
         *
         * @throws InvalidInputException when the target appeared meanwhile
         * @throws UncheckedIOException when the rename fails (the temporary directory is deleted on close)
         * @throws IllegalStateException when already committed
         */
        public void commit() {
            if (committed) {
                throw new IllegalStateException(target + " is already committed");
            }
            if (Files.exists(target)) {
                throw new InvalidInputException(target + " already exists; choose a new output directory or remove it first");
            }
            try {
                try {
                    Files.move(dir, target, StandardCopyOption.ATOMIC_MOVE);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(dir, target);
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot write output directory " + target + ": " + e.getMessage(), e);
            }
            committed = true;
        }

        /** Deletes the temporary directory unless committed. */
        @Override
        public void close() {
            if (!committed) {
                deleteTree(dir);
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
