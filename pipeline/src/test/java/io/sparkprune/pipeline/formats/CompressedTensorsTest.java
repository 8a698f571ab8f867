package io.sparkprune.pipeline.formats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HalfFloats;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsCheckpoint;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsWriter;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.RandomAccessFile;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** pack-quantized: codes round-trip as the same integers, the word layout, config, dequantization, errors. */
class CompressedTensorsTest {

    @TempDir
    Path tmp;

    static final String W = "model.layers.0.mlp.down_proj.weight";
    static final String LM = "lm_head.weight";

    static QuantizedWeights random(QuantizationSpec spec, int rows, int cols, long seed) {
        Random rnd = new Random(seed);
        byte[] codes = new byte[rows * cols];
        int g = spec.groups(cols);
        float[] scales = new float[rows * g];
        int[] zps = new int[rows * g];
        for (int i = 0; i < scales.length; i++) {
            scales[i] = 0.01f + rnd.nextFloat() / 10;
            zps[i] = spec.symmetric() ? 0 : spec.minCode() + rnd.nextInt(spec.maxq() + 1);
        }
        for (int i = 0; i < codes.length; i++) {
            codes[i] = (byte) (spec.minCode() + rnd.nextInt(spec.maxq() + 1));
        }
        // pruned weights: code = zero point
        for (int r = 0; r < rows; r++) {
            codes[r * cols] = (byte) zps[r * g];
        }
        return new QuantizedWeights(spec, rows, cols, codes, scales, zps);
    }

    private Path write(QuantizedWeights q, DType dtype) {
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(dtype, new long[] {4, 16}, new float[64]));
        t.put(W, HostTensor.fromFloats(dtype, new long[] {q.rows(), q.cols()}, q.dequantize()));
        t.put(LM, HostTensor.fromFloats(dtype, new long[] {4, 16}, new float[64]));
        Path out = tmp.resolve("ct");
        CompressedTensorsWriter.write(DenseTensors.of(t, "mem"), Map.of("config.json",
                "{\"model_type\": \"llama\"}".getBytes(StandardCharsets.UTF_8)), Map.of(W, q),
                Optional.of(SparsityConfigBlock.build("2:4", java.util.List.of("Linear"), java.util.List.of("lm_head"), 0.5)),
                1L << 30, out);
        return out;
    }

    @ParameterizedTest(name = "{0} bits, symmetric {1}, group {2}, {3}")
    @CsvSource({"4, false, 8, BF16", "4, true, 0, F16", "8, false, 0, BF16", "8, true, 16, F32", "4, false, 0, F32"})
    void codesRoundTripAsTheSameIntegersAndDequantizeExactly(int bits, boolean sym, int group, DType dtype) throws Exception {
        QuantizationSpec spec = new QuantizationSpec(bits, sym, group);
        QuantizedWeights q = random(spec, 11, 48, bits * 31L + group); // 11 rows: zero points need row padding
        Path out = write(q, dtype);
        assertThat(CheckpointFormat.detect(out)).isEqualTo(CheckpointFormat.COMPRESSED_TENSORS);
        try (CompressedTensorsCheckpoint c = CompressedTensorsCheckpoint.open(out)) {
            assertThat(c.names()).containsExactly("model.embed_tokens.weight", W, LM);
            QuantizedWeights back = c.quantized(W);
            assertThat(back.codes()).isEqualTo(q.codes());
            assertThat(back.zeroPoints()).isEqualTo(q.zeroPoints());
            assertThat(back.spec()).isEqualTo(spec);
            HostTensor dense = c.read(W);
            assertThat(dense.dtype()).isEqualTo(dtype);
            float[] got = dense.toFloatArray();
            int g = spec.groups(48);
            for (int r = 0; r < 11; r++) {
                for (int col = 0; col < 48; col++) {
                    int k = r * g + (group == 0 ? 0 : col / group);
                    float scale = round(dtype, q.scales()[k]);
                    float expect = round(dtype, scale * (q.codes()[r * 48 + col] - q.zeroPoints()[k]));
                    assertThat(got[r * 48 + col]).as("r%d c%d", r, col).isEqualTo(expect);
                }
                assertThat(got[r * 48]).isZero(); // pruned weight stays an exact zero
            }
        }
        try (ShardedCheckpoint s = ShardedCheckpoint.open(out)) {
            String p = "model.layers.0.mlp.down_proj.";
            int f = 32 / bits;
            assertThat(s.info(p + "weight_packed").dtype()).isEqualTo(DType.I32);
            assertThat(s.info(p + "weight_packed").shape()).containsExactly(11, 48 / f);
            assertThat(s.info(p + "weight_scale").dtype()).isEqualTo(dtype);
            assertThat(s.info(p + "weight_shape").dtype()).isEqualTo(DType.I64);
            assertThat(s.contains(p + "weight_zero_point")).isEqualTo(!sym);
            if (!sym) {
                assertThat(s.info(p + "weight_zero_point").shape()).containsExactly((11 + f - 1) / f, spec.groups(48));
            }
            // word 0 of row 0 = sum over i < f of (code_i + 2^(bits-1)) << (bits * i): first value in the low bits
            long expect = 0;
            for (int i = 0; i < f; i++) {
                expect |= (long) (q.codes()[i] + (1 << (bits - 1))) << (bits * i);
            }
            assertThat(s.read(p + "weight_packed").data().order(ByteOrder.LITTLE_ENDIAN).getInt(0)).isEqualTo((int) expect);
        }
        JsonNode cfg = new ObjectMapper().readTree(Files.readAllBytes(out.resolve("config.json")));
        JsonNode qc = cfg.get("quantization_config");
        assertThat(qc.get("quant_method").asText()).isEqualTo("compressed-tensors");
        assertThat(qc.get("format").asText()).isEqualTo("pack-quantized");
        JsonNode w = qc.get("config_groups").get("group_0").get("weights");
        assertThat(w.get("num_bits").asInt()).isEqualTo(bits);
        assertThat(w.get("type").asText()).isEqualTo("int");
        assertThat(w.get("symmetric").asBoolean()).isEqualTo(sym);
        assertThat(w.get("strategy").asText()).isEqualTo(group == 0 ? "channel" : "group");
        assertThat(qc.get("ignore")).extracting(JsonNode::asText).containsExactly("lm_head");
        assertThat(qc.get("sparsity_config").get("sparsity_structure").asText()).isEqualTo("2:4");

        Path hf = tmp.resolve("hf");
        assertThat(Decompressor.toHf(out, hf, 1L << 30)).isEqualTo(CheckpointFormat.COMPRESSED_TENSORS);
        JsonNode dcfg = new ObjectMapper().readTree(Files.readAllBytes(hf.resolve("config.json")));
        assertThat(dcfg.has("quantization_config")).isFalse();
        assertThat(dcfg.get("sparsity_config").get("format").asText()).isEqualTo("dense");
        try (ShardedCheckpoint d = ShardedCheckpoint.open(hf); CompressedTensorsCheckpoint c = CompressedTensorsCheckpoint.open(out)) {
            assertThat(d.tensorNames()).containsExactly("model.embed_tokens.weight", W, LM);
            assertThat(d.read(W)).isEqualTo(c.read(W));
        }
    }

    private static float round(DType d, float v) {
        return switch (d) {
            case BF16 -> HalfFloats.bf16ToFloat(HalfFloats.floatToBf16(v));
            case F16 -> HalfFloats.f16ToFloat(HalfFloats.floatToF16(v));
            default -> v;
        };
    }

    @Test
    void twoBitQuantizationIsRefusedForPackQuantized() {
        QuantizedWeights q = random(new QuantizationSpec(2, true, 0), 4, 16, 1);
        assertThatThrownBy(() -> write(q, DType.BF16)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("4- or 8-bit");
        assertThat(tmp.resolve("ct")).doesNotExist();
    }

    @Test
    void corruptOrTruncatedInputIsATypedErrorAndLeavesNoOutput() throws Exception {
        Path out = write(random(new QuantizationSpec(4, false, 8), 8, 32, 3), DType.BF16);
        // a config that names another format
        Path cfg = out.resolve("config.json");
        String good = Files.readString(cfg);
        Files.writeString(cfg, good.replace("pack-quantized", "marlin-24"));
        assertThatThrownBy(() -> Decompressor.toHf(out, tmp.resolve("a"), 1L << 30)).isInstanceOf(FormatException.class)
                .hasMessageContaining("marlin-24");
        Files.writeString(cfg, good);
        try (RandomAccessFile f = new RandomAccessFile(out.resolve("model.safetensors").toFile(), "rw")) {
            f.setLength(f.length() - 3);
        }
        assertThatThrownBy(() -> Decompressor.toHf(out, tmp.resolve("b"), 1L << 30)).isInstanceOf(InvalidInputException.class);
        assertThat(tmp.toFile().list()).containsExactly("ct");
    }

    @Test
    void sparsityConfigBlockIsAddedAtTopLevelKeepingOtherKeys() throws Exception {
        byte[] cfg = "{\"model_type\": \"llama\", \"hidden_size\": 8}".getBytes(StandardCharsets.UTF_8);
        byte[] out = SparsityConfigBlock.addTo(cfg, SparsityConfigBlock.build(
                SparsityConfigBlock.structure(io.sparkprune.calibration.sparsity.SparsityPattern.parse("block:16x16:0.5")),
                java.util.List.of("re:.*layers.*"), java.util.List.of("lm_head"), 0.25), "config.json");
        JsonNode root = new ObjectMapper().readTree(out);
        assertThat(root.get("hidden_size").asInt()).isEqualTo(8);
        JsonNode s = root.get("sparsity_config");
        assertThat(s.get("format").asText()).isEqualTo("dense");
        assertThat(s.get("sparsity_structure").asText()).isEqualTo("block:16x16");
        assertThat(s.get("global_sparsity").asDouble()).isEqualTo(0.25);
        assertThat(s.get("targets").get(0).asText()).isEqualTo("re:.*layers.*");
        assertThat(s.get("ignore").get(0).asText()).isEqualTo("lm_head");
    }
}
