package io.sparkprune.pipeline.formats;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The non-weight files of a checkpoint directory that conversions carry over byte for byte:
 * config.json, generation config and tokenizer files.
 */
public final class SideFiles {

    /** The file names carried over, when present. */
    public static final List<String> NAMES = List.of("config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
            "tokenizer.model", "added_tokens.json", "modules.json", "sentence_bert_config.json");

    /** Largest side file accepted: 256 MiB. */
    public static final long MAX_BYTES = 256L << 20;

    private SideFiles() {
    }

    /**
     * @param dir a checkpoint directory (a file yields nothing)
     * @return name → bytes of the files of {@link #NAMES} present in it, in that order
     * @throws FormatException when a side file exceeds {@link #MAX_BYTES}
     * @throws UncheckedIOException on a read failure
     */
    public static Map<String, byte[]> read(Path dir) {
        Map<String, byte[]> out = new LinkedHashMap<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        for (String n : NAMES) {
            Path p = dir.resolve(n);
            if (!Files.isRegularFile(p)) {
                continue;
            }
            try {
                if (Files.size(p) > MAX_BYTES) {
                    throw new FormatException(p.toString(), "larger than " + MAX_BYTES + " bytes; this is not a "
                            + "config or tokenizer file: remove it from the checkpoint directory");
                }
                out.put(n, Files.readAllBytes(p));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + p + ": " + e.getMessage(), e);
            }
        }
        return out;
    }

    /**
     * @param dir the (temporary) output directory
     * @param files name → bytes, written as they are
     * @throws UncheckedIOException on a write failure
     */
    public static void write(Path dir, Map<String, byte[]> files) {
        for (Map.Entry<String, byte[]> e : files.entrySet()) {
            if (e.getKey().contains("/") || e.getKey().contains("\\") || e.getKey().startsWith(".")) {
                throw new IllegalArgumentException("side file name must be a plain file name: " + e.getKey());
            }
            try {
                Files.write(dir.resolve(e.getKey()), e.getValue());
            } catch (IOException ex) {
                throw new UncheckedIOException("cannot write " + dir.resolve(e.getKey()) + ": " + ex.getMessage(), ex);
            }
        }
    }
}
