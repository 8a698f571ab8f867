package io.sparkprune.pipeline.formats.compressed;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.calibration.quant.QuantPacking;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.AtomicDirectory;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Writes a compressed-tensors {@code pack-quantized} checkpoint directory (docs/formats.md):
 * for each quantized {@code <module>.weight} ({@code rows × cols}, row-major) the parameters
 * <ul>
 *   <li>{@code <module>.weight_packed}: I32 {@code [rows, ceil(cols / f)]}, {@code f = 32 / bits}
 *       codes per word ({@link QuantPacking#packRows}, compressed-tensors' {@code pack_to_int32});
 *   <li>{@code <module>.weight_scale}: the weight's dtype, {@code [rows, groups]} (fp32 scales
 *       rounded to nearest-even);
 *   <li>{@code <module>.weight_zero_point}: asymmetric only, I32 {@code [ceil(rows / f), groups]},
 *       packed along rows ({@link QuantPacking#packColumns}, {@code packed_dim=0});
 *   <li>{@code <module>.weight_shape}: I64 {@code [2]} = {@code [rows, cols]};
 * </ul>
 * every other tensor dense, and config.json with {@code quantization_config} (one config group
 * {@code group_0} targeting {@code Linear}; {@code ignore}: the modules of the other 2-D
 * {@code .weight} tensors, embeddings excepted since they are not {@code Linear}). Pruned weights
 * stay exact zeros: their codes equal the zero point. All-or-nothing.
 */
public final class CompressedTensorsWriter {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private CompressedTensorsWriter() {
    }

    /**
     * @param src dense tensors in order (the quantized weights' dense values are not stored)
     * @param sideFiles side files; must include {@code config.json}, which gains {@code quantization_config}
     * @param quantized weight tensor name (ending in {@code .weight}) → its codes, scales, zero points;
     *     all with one {@link QuantizationSpec} of 4 or 8 bits
     * @param sparsityConfig a {@code sparsity_config} block to nest in {@code quantization_config}, or empty
     * @param maxShardBytes largest safetensors file before sharding
     * @param target output directory; must not exist
     * @throws InvalidInputException for mixed specs, bits other than 4 or 8, a shape mismatch, a
     *     symmetric spec with non-zero zero points, a missing config.json, or an existing target
     * @throws java.io.UncheckedIOException on I/O failure (nothing is left behind)
     */
    public static void write(DenseTensors src, Map<String, byte[]> sideFiles, Map<String, QuantizedWeights> quantized,
                             Optional<ObjectNode> sparsityConfig, long maxShardBytes, Path target) {
        QuantizationSpec spec = checkSpecs(src, quantized);
        byte[] config = sideFiles.get("config.json");
        if (config == null) {
            throw new InvalidInputException(src.source() + ": no config.json to add quantization_config to; "
                    + "convert a checkpoint directory that has one");
        }
        List<String> ignore = new ArrayList<>();
        for (String n : src.names()) {
            if (!quantized.containsKey(n) && n.endsWith(".weight") && src.shape(n).length == 2
                    && src.dtype(n).isFloatingPoint() && !n.contains("embed")) {
                ignore.add(n.substring(0, n.length() - ".weight".length()));
            }
        }
        Map<String, byte[]> side = new LinkedHashMap<>(sideFiles);
        side.put("config.json", withQuantizationConfig(config, spec, ignore, sparsityConfig, src.source()));
        int f = 32 / spec.bits();
        AtomicDirectory.write(target, tmp -> {
            SideFiles.write(tmp, side);
            try (ShardedCheckpointWriter w = ShardedCheckpointWriter.create(tmp, maxShardBytes)) {
                boolean ok = false;
                try {
                    for (String n : src.names()) {
                        QuantizedWeights q = quantized.get(n);
                        if (q == null) {
                            w.declare(n, src.dtype(n), src.shape(n));
                            continue;
                        }
                        String p = n.substring(0, n.length() - "weight".length());
                        int g = q.groups();
                        w.declare(p + PackQuantized.PACKED, DType.I32, new long[] {q.rows(), (q.cols() + f - 1) / f});
                        w.declare(p + PackQuantized.SCALE, src.dtype(n), new long[] {q.rows(), g});
                        if (!spec.symmetric()) {
                            w.declare(p + PackQuantized.ZERO_POINT, DType.I32, new long[] {(q.rows() + f - 1) / f, g});
                        }
                        w.declare(p + PackQuantized.SHAPE, DType.I64, new long[] {2});
                    }
                    w.metadata(Map.of("format", "pt"));
                    w.planShards();
                    for (String n : src.names()) {
                        QuantizedWeights q = quantized.get(n);
                        if (q == null) {
                            w.write(n, src.read(n));
                            continue;
                        }
                        String p = n.substring(0, n.length() - "weight".length());
                        w.write(p + PackQuantized.PACKED, ints(QuantPacking.packRows(q.codes(), q.rows(), q.cols(),
                                spec.bits())));
                        w.write(p + PackQuantized.SCALE, HostTensor.fromFloats(src.dtype(n),
                                new long[] {q.rows(), q.groups()}, q.scales()));
                        if (!spec.symmetric()) {
                            w.write(p + PackQuantized.ZERO_POINT, ints(QuantPacking.packColumns(
                                    QuantPacking.toCodes(q.zeroPoints(), spec.bits()), q.rows(), q.groups(), spec.bits())));
                        }
                        ByteBuffer shape = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
                        shape.putLong(0, q.rows()).putLong(8, q.cols());
                        w.write(p + PackQuantized.SHAPE, shape);
                    }
                    ok = true;
                } finally {
                    if (!ok) {
                        w.abort();
                    }
                }
            }
        });
    }

    private static QuantizationSpec checkSpecs(DenseTensors src, Map<String, QuantizedWeights> quantized) {
        QuantizationSpec spec = null;
        for (Map.Entry<String, QuantizedWeights> e : quantized.entrySet()) {
            String n = e.getKey();
            QuantizedWeights q = e.getValue();
            if (!src.names().contains(n) || !n.endsWith(".weight")) {
                throw new InvalidInputException(src.source() + ": quantized tensor '" + n + "' is not a '.weight' "
                        + "tensor of the checkpoint; quantize the checkpoint's linear weights");
            }
            long[] shape = src.shape(n);
            if (shape.length != 2 || shape[0] != q.rows() || shape[1] != q.cols() || !src.dtype(n).isFloatingPoint()) {
                throw new InvalidInputException(src.source() + ": '" + n + "' is " + src.dtype(n) + " "
                        + Arrays.toString(shape) + " but its quantized form is " + q.rows() + " x " + q.cols()
                        + "; quantize the tensor of this checkpoint");
            }
            if (spec != null && !spec.equals(q.spec())) {
                throw new InvalidInputException(src.source() + ": '" + n + "' is quantized " + q.spec().describe()
                        + " but others " + spec.describe() + "; pack-quantized output is written with one config group");
            }
            spec = q.spec();
            if (q.spec().groupSize() != 0 && q.cols() % q.spec().groupSize() != 0) {
                throw new InvalidInputException(src.source() + ": '" + n + "' has " + q.cols() + " columns, not a "
                        + "multiple of the group size " + q.spec().groupSize() + "; use a group size that divides it");
            }
            if (q.spec().symmetric() && Arrays.stream(q.zeroPoints()).anyMatch(z -> z != 0)) {
                throw new InvalidInputException(src.source() + ": '" + n + "' is symmetric but has non-zero zero "
                        + "points; symmetric grids have zero point 0");
            }
        }
        if (spec == null) {
            throw new InvalidInputException(src.source() + ": no quantized weights; pack-quantized output needs a "
                    + "quantized run (use --to hf for a dense checkpoint)");
        }
        if (spec.bits() != 4 && spec.bits() != 8) {
            throw new InvalidInputException(src.source() + ": pack-quantized stores 4- or 8-bit integers "
                    + "(compressed-tensors PackedQuantizationCompressor.match_scheme), got " + spec.bits()
                    + " bits; quantize to 4 or 8 bits");
        }
        return spec;
    }

    private static ByteBuffer ints(int[] words) {
        ByteBuffer b = ByteBuffer.allocate(4 * words.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(words);
        return b;
    }

    /**
     * @param configJson config.json bytes
     * @param spec the quantization
     * @param ignore module names left unquantized
     * @param sparsityConfig a block nested as {@code quantization_config.sparsity_config}, or empty
     * @param source label for messages
     * @return config.json with {@code quantization_config} set
     * @throws FormatException when config.json is not a JSON object
     */
    static byte[] withQuantizationConfig(byte[] configJson, QuantizationSpec spec, List<String> ignore,
                                         Optional<ObjectNode> sparsityConfig, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(configJson);
        } catch (IOException e) {
            throw new FormatException(source + "/config.json", "not valid JSON (" + e.getMessage() + "); fix it", e);
        }
        if (root == null || !root.isObject()) {
            throw new FormatException(source + "/config.json", "must hold a JSON object; fix it");
        }
        ObjectNode qc = JSON.createObjectNode();
        ObjectNode group = qc.putObject("config_groups").putObject("group_0");
        group.putNull("input_activations");
        group.putNull("output_activations");
        group.putArray("targets").add("Linear");
        ObjectNode w = group.putObject("weights");
        w.putNull("actorder");
        w.putNull("block_structure");
        w.put("dynamic", false);
        if (spec.groupSize() == 0) {
            w.putNull("group_size");
        } else {
            w.put("group_size", spec.groupSize());
        }
        w.put("num_bits", spec.bits());
        w.put("observer", "minmax");
        w.putObject("observer_kwargs");
        w.put("strategy", spec.groupSize() == 0 ? "channel" : "group");
        w.put("symmetric", spec.symmetric());
        w.put("type", "int");
        qc.put("format", PackQuantized.FORMAT);
        qc.putNull("global_compression_ratio");
        ArrayNode ig = qc.putArray("ignore");
        ignore.forEach(ig::add);
        qc.putNull("kv_cache_scheme");
        qc.put("quant_method", PackQuantized.QUANT_METHOD);
        qc.put("quantization_status", "compressed");
        sparsityConfig.ifPresent(s -> qc.set("sparsity_config", s));
        ((ObjectNode) root).set("quantization_config", qc);
        try {
            return (JSON.writeValueAsString(root) + "\n").getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
