/**
 * The CPU compute backend: {@link io.sparkprune.kernels.cpu.CpuBackend}, pure Java, multi-threaded,
 * the reference that every other backend is compared with. Its innermost loops use the JDK Vector
 * API when the JVM runs with {@code --add-modules jdk.incubator.vector} and plain Java otherwise,
 * with bit-identical results.
 */
package io.sparkprune.kernels.cpu;
