package io.sparkprune.jobs.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A real Spark standalone cluster for tests: one Master and {@code N} Workers, each a child JVM
 * started from the test classpath, bound to 127.0.0.1 on ephemeral ports.
 *
 * <p>How the JVMs get their classpath: {@link TemporarySparkHome} builds a {@code SPARK_HOME} under
 * the cluster's root directory whose {@code jars/} holds links to every jar of the test classpath
 * and jars made from its class directories. Master, Workers and drivers run with
 * {@code -cp $SPARK_HOME/conf:$SPARK_HOME/jars/*}; the Workers launch executors through Spark's
 * {@code WorkerCommandBuilder}, which builds the same classpath from {@code SPARK_HOME}
 * (environment, with {@code SPARK_SCALA_VERSION=2.13}). Executors therefore load this module's main
 * and test classes from {@code jars/} without fetching anything from the driver.
 *
 * <p>Every child runs under {@link ParentWatchdog}, so it exits if the test JVM dies; {@link #close()}
 * kills drivers, executors, Workers and the Master (SIGTERM, then SIGKILL) and sweeps any leftover
 * process whose command line names the cluster's root directory. Logs: {@code master.log},
 * {@code worker-<i>.log}, {@code driver-<n>.log} and executor {@code stdout}/{@code stderr} under
 * {@code work-<i>/}; {@link #logs()} returns their tails.
 *
 * <p>Resources: every daemon JVM gets {@code -Xmx} {@link Builder#daemonHeap(String)} (default
 * 256m), drivers {@link Builder#driverHeap(String)} (default 512m; Spark refuses less than about
 * 450 MiB), executors {@code spark.executor.memory} {@link Builder#executorMemory(String)} (default
 * 512m). Not thread-safe; one test thread drives a cluster.
 */
public final class StandaloneCluster implements AutoCloseable {
    /** Main class of every executor JVM a Worker starts. */
    public static final String EXECUTOR_MAIN = "org.apache.spark.executor.CoarseGrainedExecutorBackend";
    /** System property: set to {@code true} to keep the cluster's directory after {@link #close()}. */
    public static final String KEEP_PROPERTY = "sparkprune.cluster.keep";

    private static final Pattern MASTER_URL = Pattern.compile("Starting Spark master at (spark://[0-9.]+:\\d+)");
    private static final Pattern WEB_UI = Pattern.compile("MasterWebUI.*started at (http://[0-9.]+:\\d+)");
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Builder config;
    private final Path root;
    private final TemporarySparkHome sparkHome;
    private final List<String> jvmFlags;
    private final List<Process> daemons = new ArrayList<>(); // master first, then workers
    private final List<Path> workerDirs = new ArrayList<>();
    private final List<Path> logs = new ArrayList<>();
    private final List<Submission> submissions = new ArrayList<>();
    private final AtomicInteger driverCount = new AtomicInteger();
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private String masterUrl;
    private URI masterWebUi;
    private boolean closed;

    /** @return a builder with the defaults: 2 workers x 1 core, 1g worker memory, 512m executors */
    public static Builder builder() {
        return new Builder();
    }

    /** Cluster settings; {@link #start()} launches the cluster. */
    public static final class Builder {
        private int workers = 2;
        private int coresPerWorker = 1;
        private String workerMemory = "1g";
        private String executorMemory = "512m";
        private String daemonHeap = "256m";
        private String driverHeap = "512m";
        private Duration startTimeout = Duration.ofSeconds(150);
        private List<String> workerGpuAddresses = List.of();
        private Path parentDir = Path.of("target", "standalone-cluster");

        private Builder() {
        }

        /**
         * @param n number of Workers, at least 1
         * @return this builder
         */
        public Builder workers(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("workers must be >= 1, got " + n);
            }
            this.workers = n;
            return this;
        }

        /**
         * @param n cores each Worker offers (and {@code spark.executor.cores} of submissions)
         * @return this builder
         */
        public Builder coresPerWorker(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("coresPerWorker must be >= 1, got " + n);
            }
            this.coresPerWorker = n;
            return this;
        }

        /**
         * @param size memory each Worker offers to executors, Spark size syntax ({@code 1g})
         * @return this builder
         */
        public Builder workerMemory(String size) {
            this.workerMemory = Objects.requireNonNull(size);
            return this;
        }

        /**
         * @param size {@code spark.executor.memory} of submissions (executor {@code -Xmx})
         * @return this builder
         */
        public Builder executorMemory(String size) {
            this.executorMemory = Objects.requireNonNull(size);
            return this;
        }

        /**
         * @param size {@code -Xmx} of the Master and Worker JVMs
         * @return this builder
         */
        public Builder daemonHeap(String size) {
            this.daemonHeap = Objects.requireNonNull(size);
            return this;
        }

        /**
         * @param size {@code -Xmx} of driver JVMs started by {@link StandaloneCluster#submitAsync}
         * @return this builder
         */
        public Builder driverHeap(String size) {
            this.driverHeap = Objects.requireNonNull(size);
            return this;
        }

        /**
         * @param timeout longest wait for the Master and all Workers to be up
         * @return this builder
         */
        public Builder startTimeout(Duration timeout) {
            this.startTimeout = Objects.requireNonNull(timeout);
            return this;
        }

        /**
         * Gives Worker {@code i} one fake GPU whose address is {@code addresses.get(i)}: the Worker is
         * started with {@code spark.worker.resource.gpu.amount=1} and a discovery script that prints
         * {@code {"name": "gpu", "addresses": ["<address>"]}}.
         *
         * @param addresses one address per Worker
         * @return this builder
         */
        public Builder workerGpuAddresses(List<String> addresses) {
            this.workerGpuAddresses = List.copyOf(addresses);
            return this;
        }

        /**
         * @param dir directory under which the cluster's root directory is created (default
         *     {@code target/standalone-cluster} of the working directory)
         * @return this builder
         */
        public Builder parentDir(Path dir) {
            this.parentDir = Objects.requireNonNull(dir);
            return this;
        }

        /**
         * Starts the Master and the Workers and waits until every Worker is registered and alive.
         *
         * @return the running cluster
         * @throws IOException if the directories or {@code SPARK_HOME} cannot be created
         * @throws InterruptedException if interrupted while waiting
         * @throws IllegalStateException if the cluster is not up within the start timeout or a JVM
         *     exits; the message carries the log tails and every started process is killed
         */
        public StandaloneCluster start() throws IOException, InterruptedException {
            if (!workerGpuAddresses.isEmpty() && workerGpuAddresses.size() != workers) {
                throw new IllegalArgumentException("workerGpuAddresses needs one address per worker (" + workers
                        + "), got " + workerGpuAddresses);
            }
            StandaloneCluster cluster = new StandaloneCluster(this);
            try {
                cluster.launch();
                return cluster;
            } catch (IOException | InterruptedException | RuntimeException | Error e) {
                String logs = cluster.logs();
                cluster.close();
                throw new IllegalStateException("standalone cluster did not start: " + e.getMessage()
                        + "\n" + logs, e);
            }
        }
    }

    private StandaloneCluster(Builder config) throws IOException {
        this.config = config;
        Files.createDirectories(config.parentDir);
        this.root = Files.createTempDirectory(config.parentDir.toAbsolutePath(), "cluster-");
        this.jvmFlags = JvmFlags.sparkFlags();
        this.sparkHome = TemporarySparkHome.create(root.resolve("spark-home"),
                TemporarySparkHome.testClasspath());
        Files.createDirectories(root.resolve("tmp"));
    }

    private void launch() throws IOException, InterruptedException {
        long deadline = System.nanoTime() + config.startTimeout.toNanos();
        Path masterLog = root.resolve("master.log");
        Process master = startJvm("org.apache.spark.deploy.master.Master", config.daemonHeap,
                List.of("-Dspark.master.rest.enabled=false"),
                List.of("--host", "127.0.0.1", "--port", "0", "--webui-port", "0"), masterLog, true);
        daemons.add(master);
        masterUrl = awaitLogMatch(masterLog, MASTER_URL, master, deadline);
        masterWebUi = URI.create(awaitLogMatch(masterLog, WEB_UI, master, deadline) + "/");
        for (int i = 0; i < config.workers; i++) {
            Path workDir = Files.createDirectories(root.resolve("work-" + i));
            Path localDir = Files.createDirectories(root.resolve("local-" + i));
            workerDirs.add(workDir);
            List<String> props = new ArrayList<>();
            props.add("-Dspark.local.dir=" + localDir);
            if (!config.workerGpuAddresses.isEmpty()) {
                Path script = writeDiscoveryScript(i, config.workerGpuAddresses.get(i));
                props.add("-Dspark.worker.resource.gpu.amount=1");
                props.add("-Dspark.worker.resource.gpu.discoveryScript=" + script);
            }
            daemons.add(startJvm("org.apache.spark.deploy.worker.Worker", config.daemonHeap, props,
                    List.of("--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                            "--cores", Integer.toString(config.coresPerWorker), "--memory", config.workerMemory,
                            "--work-dir", workDir.toString(), masterUrl),
                    root.resolve("worker-" + i + ".log"), true));
        }
        awaitAliveWorkers(deadline);
    }

    private Path writeDiscoveryScript(int worker, String address) throws IOException {
        Path script = root.resolve("gpu-discovery-" + worker + ".sh");
        Files.writeString(script, "#!/usr/bin/env bash\necho '{\"name\": \"gpu\", \"addresses\": [\""
                + address + "\"]}'\n", StandardCharsets.UTF_8);
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        return script;
    }

    private Process startJvm(String mainClass, String heap, List<String> props, List<String> args, Path log,
            boolean daemon) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xmx" + heap);
        cmd.add("-XX:+UseSerialGC");
        if (daemon) {
            cmd.add("-XX:TieredStopAtLevel=1");
        }
        cmd.addAll(jvmFlags);
        cmd.add("-Djava.io.tmpdir=" + root.resolve("tmp"));
        cmd.addAll(props);
        cmd.add("-cp");
        cmd.add(sparkHome.classpath());
        cmd.add(ParentWatchdog.class.getName());
        cmd.add(mainClass);
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(root.toFile()).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        Map<String, String> env = pb.environment();
        env.keySet().removeIf(k -> k.startsWith("SPARK_") || k.startsWith("PYSPARK_")
                || k.equals("HADOOP_CONF_DIR") || k.equals("YARN_CONF_DIR") || k.equals("CLASSPATH"));
        env.put("SPARK_HOME", sparkHome.home().toString());
        env.put("SPARK_CONF_DIR", sparkHome.confDir().toString());
        env.put("SPARK_SCALA_VERSION", "2.13");
        env.put("SPARK_LOCAL_IP", "127.0.0.1");
        env.put("SPARK_LOCAL_HOSTNAME", "127.0.0.1");
        env.put("JAVA_HOME", System.getProperty("java.home"));
        logs.add(log);
        return pb.start();
    }

    private static String awaitLogMatch(Path log, Pattern pattern, Process process, long deadline)
            throws IOException, InterruptedException {
        while (true) {
            if (Files.exists(log)) {
                Matcher m = pattern.matcher(Files.readString(log, StandardCharsets.UTF_8));
                if (m.find()) {
                    return m.group(1);
                }
            }
            if (!process.isAlive()) {
                throw new IllegalStateException("process " + process.pid() + " exited with "
                        + process.exitValue() + " before logging /" + pattern + "/ to " + log);
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no line matching /" + pattern + "/ in " + log + " in time");
            }
            Thread.sleep(100);
        }
    }

    private void awaitAliveWorkers(long deadline) throws InterruptedException {
        String last = "";
        while (true) {
            for (Process p : daemons) {
                if (!p.isAlive()) {
                    throw new IllegalStateException("cluster JVM " + p.pid() + " exited with " + p.exitValue());
                }
            }
            try {
                JsonNode state = masterState();
                last = state.toString();
                long alive = 0;
                for (JsonNode w : state.path("workers")) {
                    if ("ALIVE".equals(w.path("state").asText())) {
                        alive++;
                    }
                }
                if (alive == config.workers) {
                    return;
                }
            } catch (IOException e) {
                last = e.toString();
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(config.workers + " workers not alive in time; master says " + last);
            }
            Thread.sleep(200);
        }
    }

    /**
     * The Master's state as its web UI serves it at {@code /json/} (fields {@code workers},
     * {@code aliveworkers}, {@code activeapps}, {@code completedapps}, ...).
     *
     * @return the parsed JSON
     * @throws IOException if the request fails
     * @throws InterruptedException if interrupted
     */
    public JsonNode masterState() throws IOException, InterruptedException {
        HttpRequest req = HttpRequest.newBuilder(masterWebUi.resolve("json/")).timeout(Duration.ofSeconds(10)).GET()
                .build();
        HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
        if (resp.statusCode() != 200) {
            throw new IOException("GET " + req.uri() + " -> HTTP " + resp.statusCode());
        }
        return JSON.readTree(resp.body());
    }

    /** @return the Master's URL, {@code spark://127.0.0.1:<port>} */
    public String masterUrl() {
        return masterUrl;
    }

    /** @return the Master's web UI base URL, {@code http://127.0.0.1:<port>/} */
    public URI masterWebUi() {
        return masterWebUi;
    }

    /** @return the cluster's root directory (SPARK_HOME, logs, work and local directories) */
    public Path root() {
        return root;
    }

    /** @return the temporary {@code SPARK_HOME} */
    public Path sparkHome() {
        return sparkHome.home();
    }

    /** @return process ids of the Worker JVMs, in worker order */
    public List<Long> workerPids() {
        return daemons.subList(1, daemons.size()).stream().map(Process::pid).toList();
    }

    /** @return the Master JVM's process id */
    public long masterPid() {
        return daemons.get(0).pid();
    }

    /** @return each Worker's work directory ({@code --work-dir}), in worker order */
    public List<Path> workerDirs() {
        return Collections.unmodifiableList(workerDirs);
    }

    /**
     * Which Worker a path belongs to; an executor's working directory is
     * {@code <work dir>/<app id>/<executor id>}, so a task can report {@code user.dir} and the test
     * can map it to a Worker.
     *
     * @param path an absolute path
     * @return the index of the Worker whose work directory contains {@code path}, or -1
     */
    public int workerOf(Path path) {
        Path p = path.toAbsolutePath().normalize();
        for (int i = 0; i < workerDirs.size(); i++) {
            if (p.startsWith(workerDirs.get(i).toAbsolutePath().normalize())) {
                return i;
            }
        }
        return -1;
    }

    /** @return the executor JVMs currently running under the Workers */
    public List<ProcessHandle> executors() {
        List<ProcessHandle> out = new ArrayList<>();
        for (Process w : daemons.subList(1, daemons.size())) {
            w.descendants().filter(p -> ProcessTrees.commandLine(p).contains(EXECUTOR_MAIN)).forEach(out::add);
        }
        return out;
    }

    /**
     * Waits until at least {@code n} executor JVMs run.
     *
     * @param n executors to wait for
     * @param timeout longest wait
     * @return the executors
     * @throws InterruptedException if interrupted
     * @throws IllegalStateException on timeout
     */
    public List<ProcessHandle> awaitExecutors(int n, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            List<ProcessHandle> ex = executors();
            if (ex.size() >= n) {
                return ex;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(n + " executors not running after " + timeout.toSeconds() + " s; "
                        + ex.size() + " are");
            }
            Thread.sleep(100);
        }
    }

    /**
     * Kills one executor JVM with SIGKILL (a lost executor, as when its machine dies) and waits for
     * it to be gone.
     *
     * @param pid the executor's process id; must be one of {@link #executors()}
     * @throws InterruptedException if interrupted
     * @throws IllegalArgumentException if {@code pid} is not an executor of this cluster
     * @throws IllegalStateException if it is still alive 10 s after the kill
     */
    public void killExecutor(long pid) throws InterruptedException {
        ProcessHandle ex = executors().stream().filter(p -> p.pid() == pid).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("pid " + pid + " is not a running executor of "
                        + "this cluster; executors: " + executors().stream().map(ProcessHandle::pid).toList()));
        if (!ProcessTrees.killForcibly(ex, Duration.ofSeconds(10))) {
            throw new IllegalStateException("executor " + pid + " still alive 10 s after SIGKILL");
        }
    }

    /**
     * Kills the first running executor (see {@link #killExecutor(long)}).
     *
     * @return the killed executor's process id
     * @throws InterruptedException if interrupted
     * @throws IllegalStateException if no executor runs or it survives the kill
     */
    public long killOneExecutor() throws InterruptedException {
        List<ProcessHandle> ex = executors();
        if (ex.isEmpty()) {
            throw new IllegalStateException("no executor is running");
        }
        killExecutor(ex.get(0).pid());
        return ex.get(0).pid();
    }

    /**
     * The application jar given to {@code SparkSubmit}: this module's main classes
     * ({@code target/classes}) as jarred into {@code SPARK_HOME/jars}.
     *
     * @return the jar
     */
    public Path applicationJar() {
        try {
            Path classes = Path.of(io.sparkprune.jobs.cli.SparkPruneCli.class.getProtectionDomain().getCodeSource()
                    .getLocation().toURI());
            return sparkHome.jarFor(classes);
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The {@code --conf} settings every submission gets (a submission's own settings override them):
     * one core per executor, all cluster cores, {@code spark.executor.memory}, the JVM flags for
     * executors, driver bound to 127.0.0.1, no driver UI, and a driver that waits for all executors
     * to register before scheduling (so that tasks spread over all Workers).
     *
     * @return setting name to value, in order
     */
    public Map<String, String> defaultConf() {
        Map<String, String> conf = new LinkedHashMap<>();
        conf.put("spark.executor.cores", Integer.toString(config.coresPerWorker));
        conf.put("spark.cores.max", Integer.toString(config.coresPerWorker * config.workers));
        conf.put("spark.executor.memory", config.executorMemory);
        conf.put("spark.executor.extraJavaOptions", String.join(" ", jvmFlags) + " -XX:+UseSerialGC -Djava.io.tmpdir="
                + root.resolve("tmp"));
        conf.put("spark.driver.host", "127.0.0.1");
        conf.put("spark.driver.bindAddress", "127.0.0.1");
        conf.put("spark.ui.enabled", "false");
        conf.put("spark.ui.showConsoleProgress", "false");
        conf.put("spark.scheduler.minRegisteredResourcesRatio", "1.0");
        conf.put("spark.scheduler.maxRegisteredResourcesWaitingTime", "120s");
        conf.put("spark.locality.wait", "0s");
        return conf;
    }

    /**
     * Starts {@code SparkSubmit --master <masterUrl> --deploy-mode client --class mainClass} with
     * {@link #defaultConf()} overridden by {@code conf}, the {@link #applicationJar()} and
     * {@code args}, in a child JVM with {@code -Xmx} {@link Builder#driverHeap(String)}.
     *
     * @param mainClass the application's main class (on the test classpath)
     * @param conf extra or overriding {@code --conf} settings
     * @param args the application's arguments
     * @return the running submission
     * @throws IOException if the driver JVM cannot be started
     */
    public Submission submitAsync(String mainClass, Map<String, String> conf, List<String> args) throws IOException {
        return submitAsync(mainClass, conf, args, config.driverHeap);
    }

    /**
     * {@link #submitAsync(String, Map, List)} with a given driver heap. Spark refuses a JVM heap under
     * 1.5 x its reserved memory (300 MiB, so about 450 MiB); for a smaller driver (the prune job's
     * "driver holds metadata only" test) also pass {@code spark.testing.reservedMemory} in
     * {@code conf}, in bytes, e.g. {@code 16777216}.
     *
     * @param mainClass the application's main class (on the test classpath)
     * @param conf extra or overriding {@code --conf} settings
     * @param args the application's arguments
     * @param driverHeap the driver JVM's {@code -Xmx}, e.g. {@code 128m}
     * @return the running submission
     * @throws IOException if the driver JVM cannot be started
     */
    public Submission submitAsync(String mainClass, Map<String, String> conf, List<String> args, String driverHeap)
            throws IOException {
        if (closed) {
            throw new IllegalStateException("cluster is closed");
        }
        int n = driverCount.incrementAndGet();
        Map<String, String> all = new LinkedHashMap<>(defaultConf());
        all.putAll(conf);
        List<String> submitArgs = new ArrayList<>(List.of("--master", masterUrl, "--deploy-mode", "client",
                "--class", mainClass, "--name", mainClass.substring(mainClass.lastIndexOf('.') + 1) + "-" + n));
        all.forEach((k, v) -> {
            submitArgs.add("--conf");
            submitArgs.add(k + "=" + v);
        });
        submitArgs.add(applicationJar().toString());
        submitArgs.addAll(args);
        Path log = root.resolve("driver-" + n + ".log");
        Process p = startJvm("org.apache.spark.deploy.SparkSubmit", driverHeap, List.of(), submitArgs, log, false);
        Submission s = new Submission(p, log, "driver " + n + " of " + mainClass);
        submissions.add(s);
        return s;
    }

    /**
     * {@link #submitAsync} and wait for the driver to exit.
     *
     * @param mainClass the application's main class
     * @param conf extra or overriding {@code --conf} settings
     * @param timeout longest wait for the driver
     * @param args the application's arguments
     * @return exit status and output of the driver
     * @throws IOException if the driver JVM cannot be started
     * @throws InterruptedException if interrupted
     * @throws IllegalStateException if the driver runs longer than {@code timeout} (it is killed)
     */
    public Submission.Result submit(String mainClass, Map<String, String> conf, Duration timeout, String... args)
            throws IOException, InterruptedException {
        return submitAsync(mainClass, conf, List.of(args)).waitFor(timeout);
    }

    /**
     * The last lines of every log of the cluster: Master, Workers, drivers and executors.
     *
     * @return a printable report
     */
    public String logs() {
        StringBuilder sb = new StringBuilder();
        List<Path> all = new ArrayList<>(logs);
        for (Path w : workerDirs) {
            try (Stream<Path> s = Files.walk(w)) {
                s.filter(p -> Files.isRegularFile(p)
                        && (p.getFileName().toString().equals("stderr") || p.getFileName().toString().equals("stdout")))
                        .sorted().forEach(all::add);
            } catch (IOException | UncheckedIOException e) {
                sb.append("(cannot list ").append(w).append(": ").append(e).append(")\n");
            }
        }
        for (Path log : all) {
            sb.append("===== ").append(root.relativize(log)).append(" (last 150 lines) =====\n");
            try {
                List<String> lines = Files.exists(log) ? Files.readAllLines(log, StandardCharsets.UTF_8) : List.of();
                lines.subList(Math.max(0, lines.size() - 150), lines.size()).forEach(l -> sb.append(l).append('\n'));
            } catch (IOException | UncheckedIOException e) {
                sb.append("(unreadable: ").append(e).append(")\n");
            }
        }
        return sb.toString();
    }

    /**
     * Kills every driver, executor, Worker and the Master: drivers with SIGKILL, daemons with
     * SIGTERM (their shutdown hooks stop executors), then SIGKILL for whatever is left after 10 s,
     * and finally any process whose command line names this cluster's root directory. Deletes the
     * root directory unless {@code -Dsparkprune.cluster.keep=true}. Idempotent.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            for (Submission s : submissions) {
                ProcessTrees.killForcibly(s.process().toHandle(), Duration.ofSeconds(10));
            }
            List<ProcessHandle> all = new ArrayList<>();
            for (Process d : daemons) {
                all.addAll(d.descendants().toList());
                all.add(d.toHandle());
            }
            for (int i = daemons.size() - 1; i >= 0; i--) {
                daemons.get(i).destroy();
            }
            if (!ProcessTrees.awaitExit(all, Duration.ofSeconds(10))) {
                all.forEach(ProcessHandle::destroyForcibly);
                ProcessTrees.awaitExit(all, Duration.ofSeconds(10));
            }
            String marker = root.toString();
            List<ProcessHandle> strays = ProcessHandle.allProcesses()
                    .filter(p -> ProcessTrees.commandLine(p).contains(marker)).toList();
            strays.forEach(ProcessHandle::destroyForcibly);
            ProcessTrees.awaitExit(strays, Duration.ofSeconds(10));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            daemons.forEach(Process::destroyForcibly);
        }
        if (!Boolean.getBoolean(KEEP_PROPERTY)) {
            deleteRecursively(root);
        }
    }

    /** @return true once {@link #close()} ran */
    public boolean isClosed() {
        return closed;
    }

    /**
     * @return the driver submissions made so far
     */
    public List<Submission> submissions() {
        return Collections.unmodifiableList(submissions);
    }

    private static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try {
            Files.walkFileTree(dir, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.deleteIfExists(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path d, IOException exc) throws IOException {
                    Files.deleteIfExists(d);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            System.err.println("StandaloneCluster: could not delete " + dir + ": " + e);
        }
    }
}
