package io.sparkprune.jobs.cluster;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The JVM flags Spark 4 needs on Java 17 ({@code --add-opens ...}) and the Vector API flag, as the
 * project's {@code conf/jvm-options} lists them (the file {@code bin/sparkprune} reads). If that file
 * cannot be found from the working directory, the flags are taken from the running test JVM, which
 * surefire starts with the same list (parent pom properties {@code spark.jvm.opens} and
 * {@code vector.jvm.flag}).
 */
final class JvmFlags {
    private JvmFlags() {
    }

    /** @return the flags, one per element, in file order */
    static List<String> sparkFlags() {
        Path file = findJvmOptions();
        if (file != null) {
            try {
                List<String> out = new ArrayList<>();
                for (String line : Files.readAllLines(file)) {
                    String s = line.strip();
                    if (!s.isEmpty() && !s.startsWith("#")) {
                        out.add(s);
                    }
                }
                return out;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + file, e);
            }
        }
        List<String> out = new ArrayList<>();
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (arg.startsWith("--add-opens") || arg.startsWith("--add-modules") || arg.startsWith("--add-exports")
                    || arg.equals("-XX:+IgnoreUnrecognizedVMOptions") || arg.startsWith("-Djdk.reflect.")
                    || arg.startsWith("-Dio.netty.")) {
                out.add(arg);
            }
        }
        return out;
    }

    private static Path findJvmOptions() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path candidate = dir.resolve("conf").resolve("jvm-options");
            if (Files.isRegularFile(candidate)) {
                return candidate;
            }
        }
        return null;
    }
}
