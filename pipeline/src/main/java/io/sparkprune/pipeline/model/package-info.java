/**
 * Hugging Face model configurations ({@code config.json}) of the supported families: the Llama
 * family ({@code llama}, {@code mistral}, {@code qwen2}) and the BERT family ({@code bert}).
 */
package io.sparkprune.pipeline.model;
