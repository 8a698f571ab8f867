/**
 * Benchmarks run as plain {@code main} programs (never as unit tests): they print the machine, the
 * backend and throughput, for {@code docs/benchmarks.md}.
 */
package io.sparkprune.pipeline.bench;
