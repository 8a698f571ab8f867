/**
 * SparkPrune's {@code sparse} checkpoint format: per 2-D tensor, N:M kept values plus packed
 * in-group indices, BSR tiles, or a bitmask plus values, in safetensors containers with a manifest
 * in {@code __metadata__}; other tensors dense. {@link io.sparkprune.pipeline.formats.sparse.SparseWriter}
 * writes it, {@link io.sparkprune.pipeline.formats.sparse.SparseCheckpoint} reads it back to dense
 * bit for bit. Integer payloads are stored raw or, with the {@link io.sparkprune.pipeline.formats.sparse.PayloadCodec#DEFLATE}
 * codec, as raw DEFLATE chunks of whole rows ({@link io.sparkprune.pipeline.formats.sparse.DeflatedPayload}).
 * The byte layout is specified in {@code docs/formats.md} ("sparse").
 */
package io.sparkprune.pipeline.formats.sparse;
