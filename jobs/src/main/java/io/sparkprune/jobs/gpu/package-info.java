/**
 * Which GPU a Spark task uses, and how many tasks of one executor may use it at once.
 *
 * <p>{@link io.sparkprune.jobs.gpu.GpuBinding} follows Spark's resource scheduling (standalone, YARN,
 * Kubernetes: {@code spark.executor.resource.gpu.amount}, {@code spark.task.resource.gpu.amount},
 * a discovery script such as {@code conf/gpu-discovery.sh}); in {@code local[N]} mode, where Spark
 * assigns no resources, the device comes from {@code spark.sparkprune.gpu.device}.
 * {@link io.sparkprune.jobs.gpu.GpuSemaphore} caps concurrent GPU work per executor, as
 * spark-rapids' {@code GpuSemaphore} does. Nothing here touches CUDA: the CUDA backend (a later issue)
 * creates its context on the ordinal these classes resolve.
 */
package io.sparkprune.jobs.gpu;
