package io.sparkprune.pipeline.safetensors;

import io.sparkprune.kernels.InvalidInputException;
import java.util.Objects;
import java.util.Optional;

/**
 * A safetensors file, a sharded-checkpoint directory or its index is missing, malformed or
 * inconsistent. The message starts with the file (path or URI), then the tensor or key when one is
 * involved, then says what is wrong and how to fix it, e.g.
 * {@code "/ckpt/model.safetensors: 'lm_head.weight': data_offsets [0, 96] hold 96 bytes but F32
 * [4, 8] needs 128 bytes; the header does not match the data: re-export the checkpoint"}.
 *
 * <p>Being an {@link InvalidInputException}, the CLI maps it to exit code 3.
 */
public class SafetensorsFormatException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    private final String file;
    private final String key;

    /**
     * @param file the file or directory label (path or URI) the problem is in; not null
     * @param key the tensor name or header/index key involved, or null when none applies
     * @param message what is wrong and the fix
     */
    public SafetensorsFormatException(String file, String key, String message) {
        this(file, key, message, null);
    }

    /**
     * @param file the file or directory label (path or URI) the problem is in; not null
     * @param key the tensor name or header/index key involved, or null when none applies
     * @param message what is wrong and the fix
     * @param cause the low-level failure (JSON parser, I/O), kept for debugging; may be null
     */
    public SafetensorsFormatException(String file, String key, String message, Throwable cause) {
        super(compose(file, key, message), cause);
        this.file = Objects.requireNonNull(file, "file");
        this.key = key;
    }

    private static String compose(String file, String key, String message) {
        return key == null ? file + ": " + message : file + ": '" + key + "': " + message;
    }

    /** @return the file or directory label (path or URI) the problem is in */
    public String file() {
        return file;
    }

    /** @return the tensor name or key involved, if any */
    public Optional<String> key() {
        return Optional.ofNullable(key);
    }
}
