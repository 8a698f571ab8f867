package io.sparkprune.jobs.conf;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * One {@code spark.sparkprune.*} setting, declared once with its type, default, checks and
 * documentation, after spark-rapids' {@code RapidsConf} / Spark's {@code ConfigBuilder}:
 * <pre>
 *   ConfEntry.conf("spark.sparkprune.backend", registry)
 *       .doc("...")
 *       .enumConf(BackendChoice.class)
 *       .createWithDefault(BackendChoice.AUTO);
 * </pre>
 * A value is read from a settings map (Spark configuration keys → text); an invalid value raises a
 * {@link SparkPruneConfException} naming the key, the value and what is allowed.
 *
 * @param <T> the value type
 */
public final class ConfEntry<T> {

    private final String key;
    private final String doc;
    private final String type;
    private final Function<String, T> parser;
    private final Function<T, String> printer;
    private final List<Check<T>> checks;
    private final T defaultValue;
    private final String defaultText;

    private record Check<T>(Predicate<T> test, String requirement) {
    }

    private ConfEntry(String key, String doc, String type, Function<String, T> parser, Function<T, String> printer,
                      List<Check<T>> checks, T defaultValue, String defaultText) {
        this.key = key;
        this.doc = doc;
        this.type = type;
        this.parser = parser;
        this.printer = printer;
        this.checks = List.copyOf(checks);
        this.defaultValue = defaultValue;
        this.defaultText = defaultText;
    }

    /**
     * Starts declaring a setting.
     *
     * @param key the full key, {@code spark.sparkprune.} followed by a dotted camelCase name
     * @param register receives the finished entry (the registry rejects a key declared twice)
     * @return a builder; call {@link Builder#doc} then a type method
     */
    public static Builder conf(String key, Consumer<ConfEntry<?>> register) {
        return new Builder(key, register);
    }

    /** @return the full key */
    public String key() {
        return key;
    }

    /** @return the description, one or more sentences */
    public String doc() {
        return doc;
    }

    /** @return the value type as documented: {@code int}, {@code boolean}, {@code string} or {@code enum} */
    public String type() {
        return type;
    }

    /** @return the default as documented (may describe a computed default, e.g. {@code <output>/_staging}) */
    public String defaultText() {
        return defaultText;
    }

    /** @return the requirements the value must meet, as sentences, e.g. {@code "Must be ≥ 1."}; possibly empty */
    public List<String> requirements() {
        return checks.stream().map(Check::requirement).toList();
    }

    /** @return true when the setting has a default value (otherwise {@link #getOptional} is empty when unset) */
    public boolean hasDefault() {
        return defaultValue != null;
    }

    /**
     * @param settings Spark settings, key → text
     * @return the parsed, checked value, or the default when the key is absent
     * @throws SparkPruneConfException when the value is invalid
     * @throws IllegalStateException when the key is absent and the setting has no default value (use {@link #getOptional})
     */
    public T get(Map<String, String> settings) {
        Optional<T> v = getOptional(settings);
        if (v.isPresent()) {
            return v.get();
        }
        throw new IllegalStateException(key + " has no default value; read it with getOptional");
    }

    /**
     * @param settings Spark settings, key → text
     * @return the parsed, checked value; the default when absent; empty when absent without a default
     * @throws SparkPruneConfException when the value is invalid
     */
    public Optional<T> getOptional(Map<String, String> settings) {
        String raw = settings.get(key);
        if (raw == null) {
            return Optional.ofNullable(defaultValue);
        }
        return Optional.of(parse(raw));
    }

    /**
     * @param raw the setting's text
     * @return the parsed value, after every check
     * @throws SparkPruneConfException naming the key, the value and what is allowed
     */
    public T parse(String raw) {
        T v;
        try {
            v = parser.apply(raw.strip());
        } catch (IllegalArgumentException e) {
            throw new SparkPruneConfException(key, key + "=" + raw + " is invalid: " + e.getMessage() + "; " + fix(), e);
        }
        for (Check<T> c : checks) {
            if (!c.test().test(v)) {
                throw new SparkPruneConfException(key, key + "=" + raw + " is invalid: " + c.requirement() + " " + fix());
            }
        }
        return v;
    }

    /**
     * @param value a value of this setting
     * @return its text as {@link #parse} reads it
     */
    public String format(T value) {
        return printer.apply(value);
    }

    private String fix() {
        return "set it with --conf " + key + "=<value> (default " + defaultText + "; see docs/configuration.md)";
    }

    @Override
    public String toString() {
        return "ConfEntry[" + key + ", " + type + ", default " + defaultText + "]";
    }

    /** First stage of a declaration: the key and its documentation. */
    public static final class Builder {
        private final String key;
        private final Consumer<ConfEntry<?>> register;
        private String doc;

        private Builder(String key, Consumer<ConfEntry<?>> register) {
            this.key = Objects.requireNonNull(key, "key");
            this.register = Objects.requireNonNull(register, "register");
        }

        /**
         * @param text what the setting does, its unit and when to change it
         * @return this builder
         */
        public Builder doc(String text) {
            this.doc = Objects.requireNonNull(text, "doc");
            return this;
        }

        /** @return a builder for a text setting */
        public Typed<String> stringConf() {
            return new Typed<>(this, "string", s -> s, s -> s);
        }

        /** @return a builder for a 32-bit integer setting (decimal) */
        public Typed<Integer> intConf() {
            return new Typed<>(this, "int", s -> {
                try {
                    return Integer.parseInt(s);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("not an integer");
                }
            }, String::valueOf);
        }

        /** @return a builder for a boolean setting: {@code true} or {@code false}, any case */
        public Typed<Boolean> booleanConf() {
            return new Typed<>(this, "boolean", s -> {
                String t = s.toLowerCase(Locale.ROOT);
                if (t.equals("true") || t.equals("false")) {
                    return Boolean.parseBoolean(t);
                }
                throw new IllegalArgumentException("expected true or false");
            }, String::valueOf);
        }

        /**
         * @param type the enum; values are written lower-case and read case-insensitively
         * @param <E> the enum type
         * @return a builder for a setting with one of the enum's values
         */
        public <E extends Enum<E>> Typed<E> enumConf(Class<E> type) {
            List<String> ids = new ArrayList<>();
            for (E e : type.getEnumConstants()) {
                ids.add(e.name().toLowerCase(Locale.ROOT));
            }
            return new Typed<>(this, "enum", s -> {
                for (E e : type.getEnumConstants()) {
                    if (e.name().equalsIgnoreCase(s)) {
                        return e;
                    }
                }
                throw new IllegalArgumentException("allowed values are " + String.join(", ", ids));
            }, e -> e.name().toLowerCase(Locale.ROOT)).allowedValuesNote(ids);
        }
    }

    /**
     * Second stage: type known; add transformations and checks, then create the entry.
     *
     * @param <T> the value type
     */
    public static final class Typed<T> {
        private final Builder base;
        private final String type;
        private Function<String, T> parser;
        private final Function<T, String> printer;
        private final List<Check<T>> checks = new ArrayList<>();
        private String allowedNote;

        private Typed(Builder base, String type, Function<String, T> parser, Function<T, String> printer) {
            this.base = base;
            this.type = type;
            this.parser = parser;
            this.printer = printer;
        }

        private Typed<T> allowedValuesNote(Collection<String> ids) {
            this.allowedNote = "One of " + String.join(", ", ids) + ".";
            return this;
        }

        /**
         * @param f applied to every parsed value before the checks (e.g. upper-casing a name)
         * @return this builder
         */
        public Typed<T> transform(Function<T, T> f) {
            Function<String, T> p = parser;
            parser = s -> f.apply(p.apply(s));
            return this;
        }

        /**
         * @param test the condition a value must meet
         * @param requirement the condition as a sentence for errors and docs, e.g. {@code "Must be ≥ 1."}
         * @return this builder
         */
        public Typed<T> checkValue(Predicate<T> test, String requirement) {
            checks.add(new Check<>(test, requirement));
            return this;
        }

        /**
         * @param allowed the only accepted values (after {@link #transform})
         * @return this builder
         */
        public Typed<T> checkValues(Set<T> allowed) {
            Set<String> sorted = new TreeSet<>();
            allowed.forEach(v -> sorted.add(printer.apply(v)));
            return checkValue(allowed::contains, "Must be one of " + String.join(", ", sorted) + ".");
        }

        /**
         * @param dflt the value when the key is absent; it must pass the checks
         * @return the registered entry
         */
        public ConfEntry<T> createWithDefault(T dflt) {
            Objects.requireNonNull(dflt, "default");
            return create(dflt, printer.apply(dflt));
        }

        /**
         * @param defaultDescription what applies when the key is absent, for the docs, e.g. {@code <output>/_staging}
         * @return the registered entry, without a default value
         */
        public ConfEntry<T> createOptional(String defaultDescription) {
            return create(null, Objects.requireNonNull(defaultDescription, "defaultDescription"));
        }

        private ConfEntry<T> create(T dflt, String defaultText) {
            if (base.doc == null || base.doc.isBlank()) {
                throw new IllegalStateException(base.key + " is declared without documentation");
            }
            List<Check<T>> all = new ArrayList<>(checks);
            String doc = allowedNote == null ? base.doc : base.doc + " " + allowedNote;
            ConfEntry<T> e = new ConfEntry<>(base.key, doc, type, parser, printer, all, dflt, defaultText);
            if (dflt != null) {
                e.parse(printer.apply(dflt)); // the default must pass its own checks
            }
            base.register.accept(e);
            return e;
        }
    }
}
