/**
 * Text to token ids: {@link io.sparkprune.pipeline.tokenizer.HfTokenizer} wraps the Hugging Face
 * {@code tokenizers} library (through DJL's JNI binding) loaded from a model's {@code tokenizer.json},
 * and {@link io.sparkprune.pipeline.tokenizer.EncodedBatch} holds padded BERT-style batches
 * (ids, attention mask, token type ids; (rows x maxLength) row-major).
 *
 * <p>Offline use: the DJL jar bundles the CPU build of the native library for linux-x86_64,
 * linux-aarch64, osx-aarch64 and win-x86_64. {@code HfTokenizer} pins DJL to that bundled build
 * and turns DJL's usage telemetry off before the native library loads, so loading a tokenizer never
 * touches the network; see {@link io.sparkprune.pipeline.tokenizer.HfTokenizer} for the exact
 * properties.
 */
package io.sparkprune.pipeline.tokenizer;
