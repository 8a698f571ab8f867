package io.sparkprune.pipeline.recipe;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Which tensors a recipe prunes: {@code targets} and {@code ignore}, two lists of name patterns
 * (recipe keys {@code prune.targets} and {@code prune.ignore}), in the style of llm-compressor.
 *
 * <p>An entry is either
 * <ul>
 *   <li>{@code re:<regex>}: a Java regular expression that must match at the <em>start</em> of
 *       the name (Python's {@code re.match}, Java's {@link java.util.regex.Matcher#lookingAt()}),
 *       and reaches its end only when it ends with {@code $}; or</li>
 *   <li>any other text: an exact name.</li>
 * </ul>
 * An entry matches a tensor when it matches the tensor's name (e.g.
 * {@code model.layers.3.mlp.down_proj.weight}) or its module name, the tensor name without a
 * trailing {@code .weight} ({@code model.layers.3.mlp.down_proj}); so llm-compressor entries such as
 * {@code lm_head} or {@code re:.*q_proj$}, written for module names, work unchanged. Class-name
 * targets such as llm-compressor's {@code Linear} are not supported: they would match no tensor.
 *
 * <p>A tensor is selected when some target matches it and no ignore entry does. Whether a selected
 * tensor is a 2-D weight is for the caller to check. Immutable; equality is by the entry texts.
 */
public final class TensorSelector {

    /** Default targets: every weight inside a numbered transformer block ({@code layers.N.} or {@code layer.N.}). */
    public static final List<String> DEFAULT_TARGETS = List.of("re:.*layers?\\.\\d+\\..+\\.weight$");
    /** Default ignore list: the LM head and every embedding. */
    public static final List<String> DEFAULT_IGNORE = List.of("re:.*lm_head.*", "re:.*embed.*");

    private static final String REGEX_PREFIX = "re:";
    private static final String WEIGHT_SUFFIX = ".weight";
    /** Slot marker for an exact-name entry (compared by identity, never used to match). */
    private static final Pattern EXACT = Pattern.compile("(?!)");

    private final List<String> targets;
    private final List<String> ignore;
    private final List<Pattern> targetRegexes; // EXACT where the entry is an exact name
    private final List<Pattern> ignoreRegexes;

    private TensorSelector(List<String> targets, List<String> ignore, List<Pattern> targetRegexes,
                           List<Pattern> ignoreRegexes) {
        this.targets = targets;
        this.ignore = ignore;
        this.targetRegexes = targetRegexes;
        this.ignoreRegexes = ignoreRegexes;
    }

    /** @return {@link #DEFAULT_TARGETS} minus {@link #DEFAULT_IGNORE} */
    public static TensorSelector defaults() {
        return of(DEFAULT_TARGETS, DEFAULT_IGNORE, "defaults", "prune");
    }

    /**
     * Compiles the entries.
     *
     * @param targets at least one entry
     * @param ignore entries, possibly none
     * @param source where the lists came from, for messages
     * @param keyPath the key holding the two lists (e.g. {@code prune}), for messages
     * @return the selector
     * @throws RecipeException naming {@code <keyPath>.targets[i]} or {@code <keyPath>.ignore[i]} for
     *     an empty entry or a regex that does not compile, or {@code <keyPath>.targets} when there is
     *     no target
     */
    public static TensorSelector of(List<String> targets, List<String> ignore, String source, String keyPath) {
        String prefix = keyPath.isEmpty() ? "" : keyPath + ".";
        if (targets.isEmpty()) {
            throw new RecipeException(source, prefix + "targets", "no target given, so nothing would be pruned; list "
                    + "tensor names or re:REGEX entries, or leave the key out for the default " + DEFAULT_TARGETS);
        }
        List<String> t = List.copyOf(targets);
        List<String> i = List.copyOf(ignore);
        return new TensorSelector(t, i, compile(t, source, prefix + "targets"), compile(i, source, prefix + "ignore"));
    }

    private static List<Pattern> compile(List<String> entries, String source, String key) {
        List<Pattern> out = new ArrayList<>(entries.size());
        for (int k = 0; k < entries.size(); k++) {
            String e = entries.get(k);
            String path = key + "[" + k + "]";
            if (e.isBlank()) {
                throw new RecipeException(source, path, "empty name pattern; write a tensor name or re:REGEX");
            }
            if (!e.startsWith(REGEX_PREFIX)) {
                out.add(EXACT);
                continue;
            }
            String regex = e.substring(REGEX_PREFIX.length());
            if (regex.isEmpty()) {
                throw new RecipeException(source, path, "'re:' with an empty regex; write e.g. 're:.*q_proj$'");
            }
            try {
                out.add(Pattern.compile(regex));
            } catch (PatternSyntaxException ex) {
                throw new RecipeException(source, path, "regex '" + regex + "' does not compile: "
                        + ex.getDescription() + " near index " + ex.getIndex() + "; fix the regex (Java syntax, "
                        + "escape dots as \\\\. in double-quoted YAML or \\. in single-quoted)", ex);
            }
        }
        return List.copyOf(out);
    }

    /** @return the target entries as written */
    public List<String> targets() {
        return targets;
    }

    /** @return the ignore entries as written */
    public List<String> ignore() {
        return ignore;
    }

    /**
     * @param tensorName the full tensor name as in the checkpoint, e.g. {@code model.layers.0.self_attn.q_proj.weight}
     * @return true when some target matches the name (or its module name) and no ignore entry does
     */
    public boolean isTarget(String tensorName) {
        Objects.requireNonNull(tensorName, "tensorName");
        return anyMatch(targets, targetRegexes, tensorName) && !anyMatch(ignore, ignoreRegexes, tensorName);
    }

    /**
     * @param tensorName the full tensor name
     * @return true when some ignore entry matches it (whether or not a target does)
     */
    public boolean isIgnored(String tensorName) {
        return anyMatch(ignore, ignoreRegexes, tensorName);
    }

    private static boolean anyMatch(List<String> entries, List<Pattern> regexes, String tensorName) {
        String module = tensorName.endsWith(WEIGHT_SUFFIX)
                ? tensorName.substring(0, tensorName.length() - WEIGHT_SUFFIX.length()) : null;
        for (int k = 0; k < entries.size(); k++) {
            Pattern p = regexes.get(k);
            if (p == EXACT) {
                String e = entries.get(k);
                if (e.equals(tensorName) || e.equals(module)) {
                    return true;
                }
            } else if (p.matcher(tensorName).lookingAt() || (module != null && p.matcher(module).lookingAt())) {
                return true;
            }
        }
        return false;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorSelector s && s.targets.equals(targets) && s.ignore.equals(ignore);
    }

    @Override
    public int hashCode() {
        return 31 * targets.hashCode() + ignore.hashCode();
    }

    @Override
    public String toString() {
        return "TensorSelector[targets=" + targets + ", ignore=" + ignore + "]";
    }
}
