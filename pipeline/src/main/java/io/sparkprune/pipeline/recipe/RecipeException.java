package io.sparkprune.pipeline.recipe;

import io.sparkprune.kernels.InvalidInputException;

import java.util.Objects;

/**
 * A recipe that cannot be used: malformed YAML, an unknown key, a value of the wrong type or out of
 * range, a pattern, regex or quantization that does not parse, or settings that contradict each
 * other. The message reads {@code "<source>: <key path>: <what is wrong>; <fix>"}, e.g.
 * {@code "conf/recipes/mine.yaml: prune.quantization.bitz: unknown key; allowed keys here: bits,
 * group_size, symmetric"}. The CLI maps it, as every {@link InvalidInputException}, to exit code 3.
 */
public class RecipeException extends InvalidInputException {
    private static final long serialVersionUID = 1L;

    /** Source given by value checks that do not know the file; the reader replaces it with the file. */
    static final String UNSPECIFIED_SOURCE = "recipe";

    private final String source;
    private final String keyPath;
    private final String problem;

    /**
     * @param source where the recipe came from: a file path, or e.g. {@code "command-line override --pattern"}
     * @param keyPath the dotted key path with list indices, e.g. {@code prune.targets[2]}; empty for the whole document
     * @param problem what is wrong and the fix
     */
    public RecipeException(String source, String keyPath, String problem) {
        this(source, keyPath, problem, null);
    }

    /**
     * @param source where the recipe came from
     * @param keyPath the dotted key path, empty for the whole document
     * @param problem what is wrong and the fix
     * @param cause the low-level failure (YAML parser, regex compiler, value check), kept for debugging
     */
    public RecipeException(String source, String keyPath, String problem, Throwable cause) {
        super(Objects.requireNonNull(source, "source") + ": "
                + (Objects.requireNonNull(keyPath, "keyPath").isEmpty() ? "" : keyPath + ": ") + problem, cause);
        this.source = source;
        this.keyPath = keyPath;
        this.problem = problem;
    }

    /** @return what is wrong and the fix, without source and key path */
    public String problem() {
        return problem;
    }

    /**
     * @param newSource where the recipe really came from
     * @return the same error attributed to {@code newSource}, this one kept as the cause
     */
    RecipeException withSource(String newSource) {
        return new RecipeException(newSource, keyPath, problem, this);
    }

    /** @return where the recipe came from (file path or command-line override) */
    public String source() {
        return source;
    }

    /** @return the dotted key path of the offending value, empty for the whole document */
    public String keyPath() {
        return keyPath;
    }
}
