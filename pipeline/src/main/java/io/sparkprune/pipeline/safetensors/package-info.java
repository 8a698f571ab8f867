/**
 * Safetensors checkpoint I/O: reading and writing single {@code .safetensors} files and Hugging
 * Face checkpoint directories (single file or shards plus {@code model.safetensors.index.json}).
 *
 * <p>Format (<a href="https://github.com/huggingface/safetensors">huggingface/safetensors</a>): an
 * 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * {@code {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}}}, then the data section; offsets are relative to the data section,
 * and the tensors tile it contiguously. Data is row-major, little-endian.
 *
 * <ul>
 *   <li>{@link io.sparkprune.pipeline.safetensors.SafetensorsFile}: read a file, memory-mapped
 *       (local, windows of ≤ 1 GiB, tensors &gt; 2 GiB by rows) or by positioned range reads
 *       through a Hadoop {@code FileSystem} ({@code hdfs://}, {@code s3a://}, {@code file://}).</li>
 *   <li>{@link io.sparkprune.pipeline.safetensors.SafetensorsHeader} and
 *       {@link io.sparkprune.pipeline.safetensors.TensorInfo}: the parsed, fully validated
 *       header.</li>
 *   <li>{@link io.sparkprune.pipeline.safetensors.SafetensorsWriter}: a streaming writer with an
 *       explicit state machine; temp file, fsync, atomic rename.</li>
 *   <li>{@link io.sparkprune.pipeline.safetensors.SafetensorsRangeWriter}: the same file for a local
 *       target, its layout fixed up front, written by positional writes of byte ranges from several
 *       threads in any order; finish (fsync) and publish (rename) as separate steps.</li>
 *   <li>{@link io.sparkprune.pipeline.safetensors.ShardedCheckpoint} and
 *       {@link io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter}: checkpoint
 *       directories, with shards opened lazily and checked against the index.</li>
 * </ul>
 *
 * <p>Untrusted input: every malformed file gives a
 * {@link io.sparkprune.pipeline.safetensors.SafetensorsFormatException} naming the file, the tensor
 * or key, and the fix; no buffer is allocated from a size the file claims before that size is
 * checked against the real file length. A fuzz test holds the reader to this.
 */
package io.sparkprune.pipeline.safetensors;
