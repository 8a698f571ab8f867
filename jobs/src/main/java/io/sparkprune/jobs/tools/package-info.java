/**
 * Tools that make inputs for SparkPrune rather than prune them: a seeded random Llama-family
 * checkpoint generator ({@link io.sparkprune.jobs.tools.RandomLlama}, {@code sparkprune generate})
 * with a byte-level tokenizer ({@link io.sparkprune.jobs.tools.ByteLevelTokenizer}), for tests,
 * benchmarks and trying the job on a model of any shape without downloading one.
 */
package io.sparkprune.jobs.tools;
