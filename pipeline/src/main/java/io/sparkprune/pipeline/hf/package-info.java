/**
 * Hugging Face checkpoint directories as a whole: writing one all-or-nothing (config.json,
 * tokenizer files, safetensors) and inspecting one (family, tensors, parameters, sparsity present).
 */
package io.sparkprune.pipeline.hf;
