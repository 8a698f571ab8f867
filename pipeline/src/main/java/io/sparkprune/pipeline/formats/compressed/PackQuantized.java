package io.sparkprune.pipeline.formats.compressed;

import java.util.List;

/**
 * Names and constants of compressed-tensors' {@code pack-quantized} format, as defined by
 * {@code compressed_tensors/compressors/quantized_compressors/pack_quantized.py}
 * ({@code PackedQuantizationCompressor.compression_param_names}) and loaded by vLLM's
 * {@code CompressedTensorsWNA16} scheme.
 */
public final class PackQuantized {
    /** Suffix of the packed codes: I32 {@code [rows, ceil(cols / (32/bits))]}. */
    public static final String PACKED = "weight_packed";
    /** Suffix of the scales: weight dtype {@code [rows, groups]} (groups = 1 per channel). */
    public static final String SCALE = "weight_scale";
    /** Suffix of the packed zero points (asymmetric only): I32 {@code [ceil(rows / (32/bits)), groups]}. */
    public static final String ZERO_POINT = "weight_zero_point";
    /** Suffix of the original shape: I64 {@code [2]} = {@code [rows, cols]}. */
    public static final String SHAPE = "weight_shape";
    /** Suffix of the activation-order group index, which this reader does not support. */
    public static final String G_IDX = "weight_g_idx";
    /** All parameter suffixes. */
    public static final List<String> SUFFIXES = List.of(PACKED, SCALE, ZERO_POINT, SHAPE, G_IDX);
    /** {@code quantization_config.quant_method}. */
    public static final String QUANT_METHOD = "compressed-tensors";
    /** {@code quantization_config.format}. */
    public static final String FORMAT = "pack-quantized";

    private PackQuantized() {
    }
}
