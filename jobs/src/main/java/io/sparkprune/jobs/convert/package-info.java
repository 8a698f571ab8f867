/**
 * Checkpoint conversion as a Spark job: {@link io.sparkprune.jobs.convert.ConvertJob} writes
 * Parquet shards with one task per part file, the driver reading headers only. Used by
 * {@code sparkprune convert --to parquet}; docs/architecture.md describes it.
 */
package io.sparkprune.jobs.convert;
