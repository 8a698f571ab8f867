package io.sparkprune.jobs.cluster;

import java.io.BufferedOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.zip.Deflater;

/**
 * A {@code SPARK_HOME} made from the test JVM's classpath, laid out the way Spark's launcher expects
 * it: {@code jars/} holds a symbolic link to every jar on the classpath and a jar built from every
 * class directory on it ({@code target/classes}, {@code target/test-classes} of this module and of
 * reactor modules), and {@code conf/} holds a {@code log4j2.properties}.
 *
 * <p>Why: in standalone mode a Worker starts each executor with
 * {@code org.apache.spark.launcher.WorkerCommandBuilder}, whose classpath is
 * {@code $SPARK_CONF_DIR:$SPARK_HOME/jars/*} (plus {@code spark.executor.extraClassPath}); the Scala
 * version for the jar lookup comes from {@code SPARK_SCALA_VERSION} because a temporary home has no
 * build directories. The Master, Workers and drivers of the harness use the very same classpath, so
 * every JVM of the cluster loads the same classes.
 */
final class TemporarySparkHome {
    private final Path home;
    private final Map<Path, Path> jarOfEntry; // classpath entry (dir or jar) -> file under jars/

    private TemporarySparkHome(Path home, Map<Path, Path> jarOfEntry) {
        this.home = home;
        this.jarOfEntry = jarOfEntry;
    }

    /**
     * Creates the layout under {@code home} (which must be empty or absent).
     *
     * @param home directory to create
     * @param classpath classpath entries (jars and class directories); missing entries are skipped
     * @return the new home
     * @throws IOException if a link, a jar or the config cannot be written
     */
    static TemporarySparkHome create(Path home, List<Path> classpath) throws IOException {
        Path jars = Files.createDirectories(home.resolve("jars"));
        Path conf = Files.createDirectories(home.resolve("conf"));
        Files.writeString(conf.resolve("log4j2.properties"), LOG4J2, StandardCharsets.UTF_8);
        Map<Path, Path> jarOfEntry = new LinkedHashMap<>();
        Set<String> names = new HashSet<>();
        for (Path entry : classpath) {
            Path abs = entry.toAbsolutePath().normalize();
            if (jarOfEntry.containsKey(abs) || !Files.exists(abs)) {
                continue;
            }
            if (Files.isDirectory(abs)) {
                Path jar = jars.resolve(uniqueName(names, directoryJarName(abs)));
                jarDirectory(abs, jar);
                jarOfEntry.put(abs, jar);
            } else if (abs.getFileName().toString().endsWith(".jar")) {
                Path link = jars.resolve(uniqueName(names, abs.getFileName().toString()));
                Files.createSymbolicLink(link, abs);
                jarOfEntry.put(abs, link);
            }
        }
        return new TemporarySparkHome(home, jarOfEntry);
    }

    /** @return the {@code SPARK_HOME} directory */
    Path home() {
        return home;
    }

    /** @return {@code SPARK_HOME/conf} (also {@code SPARK_CONF_DIR}) */
    Path confDir() {
        return home.resolve("conf");
    }

    /** @return the classpath every cluster JVM uses: {@code conf/} and {@code jars/*} */
    String classpath() {
        return confDir() + File.pathSeparator + home.resolve("jars") + File.separator + "*";
    }

    /**
     * @param entry a classpath entry of the test JVM (directory or jar)
     * @return the file under {@code jars/} made from it
     * @throws IllegalArgumentException if the entry was not on the classpath
     */
    Path jarFor(Path entry) {
        Path jar = jarOfEntry.get(entry.toAbsolutePath().normalize());
        if (jar == null) {
            throw new IllegalArgumentException(entry + " is not on the test classpath: " + jarOfEntry.keySet());
        }
        return jar;
    }

    /**
     * The test JVM's classpath. Surefire may start the JVM with a manifest-only jar; its
     * {@code Class-Path} is then expanded.
     *
     * @return classpath entries in order
     */
    static List<Path> testClasspath() {
        List<Path> out = new ArrayList<>();
        for (String s : System.getProperty("java.class.path").split(File.pathSeparator)) {
            if (s.isEmpty()) {
                continue;
            }
            Path p = Path.of(s);
            List<Path> fromManifest = manifestClassPath(p);
            if (fromManifest.isEmpty()) {
                out.add(p);
            } else {
                out.addAll(fromManifest);
            }
        }
        return out;
    }

    private static List<Path> manifestClassPath(Path jar) {
        if (!jar.getFileName().toString().startsWith("surefirebooter") || !Files.isRegularFile(jar)) {
            return List.of();
        }
        try (JarFile jf = new JarFile(jar.toFile())) {
            Manifest mf = jf.getManifest();
            String cp = mf == null ? null : mf.getMainAttributes().getValue(Attributes.Name.CLASS_PATH);
            if (cp == null) {
                return List.of();
            }
            List<Path> out = new ArrayList<>();
            for (String url : cp.trim().split("\\s+")) {
                out.add(Path.of(new URI(url)));
            }
            return out;
        } catch (IOException | URISyntaxException e) {
            throw new IllegalStateException("cannot read the classpath of surefire's booter jar " + jar, e);
        }
    }

    /** {@code .../jobs/target/test-classes} becomes {@code jobs-test-classes.jar}. */
    private static String directoryJarName(Path dir) {
        Path parent = dir.getParent();
        String module = parent != null && parent.getFileName().toString().equals("target") && parent.getParent() != null
                ? parent.getParent().getFileName() + "-" : "";
        return module + dir.getFileName() + ".jar";
    }

    private static String uniqueName(Set<String> names, String name) {
        String candidate = name;
        for (int i = 2; !names.add(candidate); i++) {
            candidate = name.replaceFirst("\\.jar$", "") + "-" + i + ".jar";
        }
        return candidate;
    }

    private static void jarDirectory(Path dir, Path jar) throws IOException {
        Manifest mf = new Manifest();
        mf.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        try (OutputStream fos = new BufferedOutputStream(Files.newOutputStream(jar));
                JarOutputStream out = new JarOutputStream(fos, mf)) {
            out.setLevel(Deflater.BEST_SPEED);
            Files.walkFileTree(dir, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes attrs) throws IOException {
                    if (!d.equals(dir)) {
                        out.putNextEntry(new JarEntry(entryName(dir, d) + "/"));
                        out.closeEntry();
                    }
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
                    String name = entryName(dir, f);
                    if (!name.equals("META-INF/MANIFEST.MF")) {
                        out.putNextEntry(new JarEntry(name));
                        Files.copy(f, out);
                        out.closeEntry();
                    }
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    private static String entryName(Path root, Path p) {
        return root.relativize(p).toString().replace(File.separatorChar, '/');
    }

    /**
     * Logging of every cluster JVM: Spark's deploy messages at INFO (the harness reads the master's
     * URLs from them), the rest at WARN, to standard error (which the harness sends to a log file).
     */
    private static final String LOG4J2 = String.join("\n",
            "rootLogger.level = warn",
            "rootLogger.appenderRef.stderr.ref = console",
            "appender.console.type = Console",
            "appender.console.name = console",
            "appender.console.target = SYSTEM_ERR",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = %d{HH:mm:ss.SSS} %-5p %c{1}: %m%n",
            "logger.deploy.name = org.apache.spark.deploy",
            "logger.deploy.level = info",
            "logger.executor.name = org.apache.spark.executor",
            "logger.executor.level = info",
            "logger.scheduler.name = org.apache.spark.scheduler",
            "logger.scheduler.level = info",
            "logger.standalone.name = org.apache.spark.scheduler.cluster",
            "logger.standalone.level = info",
            "logger.sparkprune.name = io.sparkprune",
            "logger.sparkprune.level = info",
            "logger.djl.name = ai.djl",
            "logger.djl.level = error",
            "");
}
