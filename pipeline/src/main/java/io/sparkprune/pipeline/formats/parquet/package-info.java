/**
 * Parquet shards: the {@code sparse} format's records as a Parquet table, one row per (tensor,
 * row range) with its encoding, payload columns (the sparse components of the range, byte for
 * byte) and SHA-256 checksums, in part files that separate processes write in parallel
 * ({@link io.sparkprune.pipeline.formats.parquet.ParquetShardWriter}), plus the side files and a
 * JSON manifest. {@link io.sparkprune.pipeline.formats.parquet.ParquetShards} reads it back to
 * dense tensors bit for bit. Readable with Spark SQL for audits. Written with parquet-java's
 * example object model, without Spark. The layout is specified in {@code docs/formats.md}
 * ("Parquet shards").
 */
package io.sparkprune.pipeline.formats.parquet;
