/**
 * Checkpoint formats beyond a plain Hugging Face directory, each with a writer and a reader that
 * round-trip exactly: the {@code sparsity_config} block of config.json ({@link
 * io.sparkprune.pipeline.formats.SparsityConfigBlock}), the {@code sparse} format
 * ({@code formats.sparse}), compressed-tensors {@code pack-quantized} ({@code formats.compressed}),
 * format detection ({@link io.sparkprune.pipeline.formats.CheckpointFormat}) and decompression of
 * any of them to a dense Hugging Face directory ({@link io.sparkprune.pipeline.formats.Decompressor}).
 * Layouts are specified in {@code docs/formats.md}.
 */
package io.sparkprune.pipeline.formats;
