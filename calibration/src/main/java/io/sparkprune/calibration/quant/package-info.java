/**
 * Integer weight quantization: the grid specification ({@link io.sparkprune.calibration.quant.QuantizationSpec}),
 * the solver's integer output ({@link io.sparkprune.calibration.quant.QuantizedWeights}) and
 * bit-exact int32 packing ({@link io.sparkprune.calibration.quant.QuantPacking}) in
 * compressed-tensors' {@code pack-quantized} layout. Grid arithmetic is
 * {@link io.sparkprune.kernels.GridMath} (GPTQ's, in fp32).
 */
package io.sparkprune.calibration.quant;
