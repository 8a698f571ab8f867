package io.sparkprune.jobs.cluster;

import java.util.Objects;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * JUnit 5 extension that runs one {@link StandaloneCluster} for a test class: started before the
 * first test, closed after the last, and whose logs are printed to standard error when a test
 * fails. Register it as a static field:
 *
 * <pre>{@code
 * @RegisterExtension
 * static final StandaloneClusterExtension CLUSTER =
 *         new StandaloneClusterExtension(StandaloneCluster.builder().workers(2));
 * ...
 * CLUSTER.cluster().submit(MyApp.class.getName(), Map.of(), Duration.ofSeconds(90), "arg");
 * }</pre>
 */
public final class StandaloneClusterExtension
        implements BeforeAllCallback, AfterAllCallback, TestExecutionExceptionHandler {
    private final StandaloneCluster.Builder builder;
    private StandaloneCluster cluster;

    /**
     * @param builder settings of the cluster to start
     */
    public StandaloneClusterExtension(StandaloneCluster.Builder builder) {
        this.builder = Objects.requireNonNull(builder);
    }

    /** @return the running cluster; only valid between beforeAll and afterAll */
    public StandaloneCluster cluster() {
        if (cluster == null || cluster.isClosed()) {
            throw new IllegalStateException("the standalone cluster is not running (used outside the test class?)");
        }
        return cluster;
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        cluster = builder.start();
    }

    @Override
    public void afterAll(ExtensionContext context) {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Override
    public void handleTestExecutionException(ExtensionContext context, Throwable throwable) throws Throwable {
        if (cluster != null && !cluster.isClosed()) {
            System.err.println("===== " + context.getDisplayName() + " failed; standalone cluster logs under "
                    + cluster.root() + " =====");
            System.err.println(cluster.logs());
        }
        throw throwable;
    }
}
