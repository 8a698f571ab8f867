package io.sparkprune.pipeline.formats.compressed;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.calibration.quant.QuantPacking;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Reads a compressed-tensors {@code pack-quantized} checkpoint: its integer codes
 * ({@link #quantized}) and its dense, dequantized weights ({@link #read}, value
 * {@code scale · (code − zero_point)} computed in fp32 and rounded to the scale's dtype — what
 * compressed-tensors' {@code dequantize} computes in that dtype, since the product of a 16-bit
 * float and a small integer is exact in fp32). Each {@code <module>.weight_packed} appears as
 * {@code <module>.weight}; other tensors pass through.
 *
 * <p>Supported: {@code quantization_config} with {@code quant_method: compressed-tensors},
 * {@code format: pack-quantized}, integer weights of 4 or 8 bits, strategy {@code channel} or
 * {@code group}, symmetric or asymmetric, all config groups with the same bits and symmetry.
 * Anything else, a missing or misshapen parameter, or a code outside the signed range is a
 * {@link FormatException}.
 */
public final class CompressedTensorsCheckpoint implements DenseTensors, AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final ShardedCheckpoint ckpt;
    private final int bits;
    private final boolean symmetric;
    private final Map<String, String> weightToPrefix = new LinkedHashMap<>();
    private final List<String> names = new ArrayList<>();

    private CompressedTensorsCheckpoint(ShardedCheckpoint ckpt, int bits, boolean symmetric) {
        this.ckpt = ckpt;
        this.bits = bits;
        this.symmetric = symmetric;
    }

    /**
     * @param dir the checkpoint directory (config.json with {@code quantization_config}, safetensors)
     * @return the open checkpoint
     * @throws FormatException when the config or the parameters are not a supported pack-quantized layout
     * @throws io.sparkprune.pipeline.safetensors.SafetensorsFormatException for a malformed safetensors file
     */
    public static CompressedTensorsCheckpoint open(Path dir) {
        ShardedCheckpoint ckpt = ShardedCheckpoint.open(dir);
        boolean ok = false;
        try {
            String where = ckpt.sideFileLabel("config.json");
            byte[] cfg = ckpt.readSideFile("config.json", 16 << 20).orElseThrow(() -> new FormatException(where,
                    "missing; a compressed-tensors checkpoint needs config.json with quantization_config"));
            JsonNode qc = quantizationConfig(cfg, where).orElseThrow(() -> new FormatException(where,
                    "no quantization_config with quant_method 'compressed-tensors'; this is not a compressed-tensors "
                    + "checkpoint"));
            String format = qc.path("format").asText("");
            if (!PackQuantized.FORMAT.equals(format)) {
                throw new FormatException(where, "quantization_config.format is '" + format + "'; only '"
                        + PackQuantized.FORMAT + "' is supported");
            }
            JsonNode groups = qc.path("config_groups");
            if (!groups.isObject() || groups.isEmpty()) {
                throw new FormatException(where, "quantization_config.config_groups is missing or empty");
            }
            Integer bits = null;
            Boolean sym = null;
            var it = groups.fields();
            while (it.hasNext()) {
                var g = it.next();
                JsonNode w = g.getValue().path("weights");
                String key = "quantization_config.config_groups." + g.getKey() + ".weights";
                if (!"int".equals(w.path("type").asText()) || !w.path("num_bits").canConvertToInt()) {
                    throw new FormatException(where, key + " must have type 'int' and an integer num_bits, got " + w);
                }
                int b = w.path("num_bits").asInt();
                boolean s = w.path("symmetric").asBoolean(true);
                String strategy = w.path("strategy").asText("");
                if (b != 4 && b != 8 || !strategy.equals("channel") && !strategy.equals("group")) {
                    throw new FormatException(where, key + ": num_bits " + b + ", strategy '" + strategy
                            + "' is not supported; pack-quantized with 4 or 8 bits and strategy channel or group is");
                }
                if (bits != null && (bits != b || sym != s)) {
                    throw new FormatException(where, "config groups with different num_bits or symmetry are not "
                            + "supported");
                }
                bits = b;
                sym = s;
            }
            CompressedTensorsCheckpoint c = new CompressedTensorsCheckpoint(ckpt, bits, sym);
            c.index();
            ok = true;
            return c;
        } finally {
            if (!ok) {
                ckpt.close();
            }
        }
    }

    /**
     * @param configJson config.json bytes
     * @param where label for messages
     * @return its {@code quantization_config} when {@code quant_method} is {@code compressed-tensors}
     * @throws FormatException when config.json is not a JSON object
     */
    public static Optional<JsonNode> quantizationConfig(byte[] configJson, String where) {
        JsonNode root;
        try {
            root = JSON.readTree(configJson);
        } catch (IOException e) {
            throw new FormatException(where, "not valid JSON (" + e.getMessage() + "); fix it", e);
        }
        if (root == null || !root.isObject()) {
            throw new FormatException(where, "must hold a JSON object; fix it");
        }
        JsonNode qc = root.path("quantization_config");
        return PackQuantized.QUANT_METHOD.equals(qc.path("quant_method").asText()) ? Optional.of(qc) : Optional.empty();
    }

    private void index() {
        for (String n : ckpt.tensorNames()) {
            if (n.endsWith(PackQuantized.PACKED)) {
                String p = n.substring(0, n.length() - PackQuantized.PACKED.length());
                weightToPrefix.put(p + "weight", p);
                names.add(p + "weight");
                continue;
            }
            String owner = null;
            for (String s : PackQuantized.SUFFIXES) {
                if (n.endsWith(s) && ckpt.contains(n.substring(0, n.length() - s.length()) + PackQuantized.PACKED)) {
                    owner = s;
                }
            }
            if (PackQuantized.G_IDX.equals(owner)) {
                throw new FormatException(ckpt.source() + ": '" + n + "'", "activation-order group indices (g_idx) "
                        + "are not supported; export without actorder");
            }
            if (owner == null) {
                names.add(n);
            }
        }
        for (String w : weightToPrefix.keySet()) {
            quantized(w); // validates every parameter's dtype and shape
        }
    }

    /** @return bits per code (4 or 8) */
    public int bits() {
        return bits;
    }

    /** @return whether the grids are symmetric (no zero points stored) */
    public boolean symmetric() {
        return symmetric;
    }

    /** @return the dense names of the quantized weights, in order */
    public List<String> quantizedNames() {
        return List.copyOf(weightToPrefix.keySet());
    }

    /**
     * @param weightName {@code <module>.weight} of a quantized module
     * @return bytes of its stored parameters (packed codes, scales, zero points, shape)
     */
    public long storedBytes(String weightName) {
        String p = prefix(weightName);
        long b = 0;
        for (String s : PackQuantized.SUFFIXES) {
            if (ckpt.contains(p + s)) {
                b += ckpt.info(p + s).byteLength();
            }
        }
        return b;
    }

    private String prefix(String weightName) {
        String p = weightToPrefix.get(weightName);
        if (p == null) {
            throw new IllegalArgumentException(ckpt.source() + ": '" + weightName + "' is not a quantized weight");
        }
        return p;
    }

    /**
     * @param weightName {@code <module>.weight} of a quantized module
     * @return its codes, fp32 scales and zero points (0 when symmetric)
     * @throws FormatException for a missing or misshapen parameter or an inconsistent shape
     */
    public QuantizedWeights quantized(String weightName) {
        String p = prefix(weightName);
        String where = ckpt.source() + ": '" + p + "*'";
        TensorInfo packed = param(p + PackQuantized.PACKED, where);
        TensorInfo scale = param(p + PackQuantized.SCALE, where);
        TensorInfo shapeInfo = param(p + PackQuantized.SHAPE, where);
        int f = 32 / bits;
        if (shapeInfo.numel() != 2 || (shapeInfo.dtype() != DType.I64 && shapeInfo.dtype() != DType.I32)) {
            throw new FormatException(where, "weight_shape must be I64 (or I32) [2], got " + shapeInfo.dtype() + " "
                    + Arrays.toString(shapeInfo.shape()));
        }
        ByteBuffer sb = ckpt.read(p + PackQuantized.SHAPE).data().order(ByteOrder.LITTLE_ENDIAN);
        long rows = shapeInfo.dtype() == DType.I64 ? sb.getLong(0) : sb.getInt(0);
        long cols = shapeInfo.dtype() == DType.I64 ? sb.getLong(8) : sb.getInt(4);
        if (packed.dtype() != DType.I32 || packed.rank() != 2 || rows < 1 || cols < 1
                || packed.shape()[0] != rows || packed.shape()[1] != (cols + f - 1) / f) {
            throw new FormatException(where, "weight_packed is " + packed.dtype() + " " + Arrays.toString(packed.shape())
                    + " but weight_shape [" + rows + ", " + cols + "] with " + bits + "-bit codes needs I32 [" + rows
                    + ", " + (cols + f - 1) / f + "]; the checkpoint is corrupt");
        }
        if (!scale.dtype().isFloatingPoint() || scale.rank() != 2 || scale.shape()[0] != rows || scale.shape()[1] < 1
                || cols % scale.shape()[1] != 0) {
            throw new FormatException(where, "weight_scale is " + scale.dtype() + " " + Arrays.toString(scale.shape())
                    + "; expected a float [" + rows + ", groups] with groups dividing " + cols);
        }
        int g = (int) scale.shape()[1];
        QuantizationSpec spec = new QuantizationSpec(bits, symmetric, g == 1 ? 0 : (int) (cols / g));
        int[] zps = new int[(int) (rows * g)];
        if (!symmetric) {
            TensorInfo zp = param(p + PackQuantized.ZERO_POINT, where);
            if (zp.dtype() != DType.I32 || zp.rank() != 2 || zp.shape()[0] != (rows + f - 1) / f || zp.shape()[1] != g) {
                throw new FormatException(where, "weight_zero_point is " + zp.dtype() + " " + Arrays.toString(zp.shape())
                        + "; expected I32 [" + (rows + f - 1) / f + ", " + g + "] (packed along rows)");
            }
            byte[] z = QuantPacking.unpackColumns(ints(ckpt.read(p + PackQuantized.ZERO_POINT)), (int) rows, g, bits);
            for (int i = 0; i < z.length; i++) {
                zps[i] = z[i];
            }
        }
        byte[] codes = QuantPacking.unpackRows(ints(ckpt.read(p + PackQuantized.PACKED)), (int) rows, (int) cols, bits);
        float[] scales = ckpt.read(p + PackQuantized.SCALE).toFloatArray();
        return new QuantizedWeights(spec, (int) rows, (int) cols, codes, scales, zps);
    }

    private TensorInfo param(String name, String where) {
        if (!ckpt.contains(name)) {
            throw new FormatException(where, "parameter '" + name + "' is missing; the checkpoint is incomplete");
        }
        return ckpt.info(name);
    }

    private static int[] ints(HostTensor t) {
        int[] out = new int[(int) t.numel()];
        t.data().order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(out);
        return out;
    }

    @Override
    public String source() {
        return ckpt.source();
    }

    @Override
    public List<String> names() {
        return List.copyOf(names);
    }

    @Override
    public DType dtype(String name) {
        String p = weightToPrefix.get(name);
        return p == null ? ckpt.info(name).dtype() : ckpt.info(p + PackQuantized.SCALE).dtype();
    }

    @Override
    public long[] shape(String name) {
        String p = weightToPrefix.get(name);
        return p == null ? ckpt.info(name).shape()
                : new long[] {ckpt.info(p + PackQuantized.PACKED).shape()[0], quantized(name).cols()};
    }

    /**
     * @param name a dense name
     * @return a passed-through tensor, or a quantized weight dequantized to its scale dtype
     */
    @Override
    public HostTensor read(String name) {
        String p = weightToPrefix.get(name);
        if (p == null) {
            return ckpt.read(name);
        }
        QuantizedWeights q = quantized(name);
        return HostTensor.fromFloats(dtype(name), new long[] {q.rows(), q.cols()}, q.dequantize());
    }

    @Override
    public void close() {
        ckpt.close();
    }
}
