/**
 * Test harness for a real Spark standalone cluster: {@link io.sparkprune.jobs.cluster.StandaloneCluster}
 * starts a Master and Workers as child JVMs from the Maven-resolved test classpath (through a
 * temporary {@code SPARK_HOME} whose {@code jars/} holds that classpath), submits applications with
 * {@code SparkSubmit} in client mode, kills executors or drivers on request, and tears everything down
 * without leaving processes behind. {@link io.sparkprune.jobs.cluster.StandaloneClusterExtension}
 * wires it into JUnit 5; the cluster tests are tagged {@code cluster}.
 */
package io.sparkprune.jobs.cluster;
