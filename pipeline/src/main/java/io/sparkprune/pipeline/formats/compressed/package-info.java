/**
 * compressed-tensors' {@code pack-quantized} checkpoints (the layout vLLM loads for int4/int8
 * weight-only models): {@link io.sparkprune.pipeline.formats.compressed.CompressedTensorsWriter}
 * writes one from dense tensors and {@link io.sparkprune.calibration.quant.QuantizedWeights};
 * {@link io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint} reads one back
 * (integer codes, or dequantized dense weights). Layout and sources: {@code docs/formats.md}.
 */
package io.sparkprune.pipeline.formats.compressed;
