package io.sparkprune.jobs.cli;

import static io.sparkprune.jobs.cli.CliRun.run;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.calibration.quant.QuantizationSpec;
import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.compressed.CompressedTensorsWriter;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code convert} and {@code decompress} on corrupt sparse (raw and deflated payloads) and compressed-tensors checkpoints exit
 * with code 3 and leave neither the output directory nor a temporary sibling behind.
 */
class CorruptInputCliTest {

    @TempDir
    Path tmp;

    private static final String Q = "model.layers.0.self_attn.q_proj.weight";

    private Path sparse() {
        return sparse("none");
    }

    private Path sparse(String codec) {
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        float[] q = new float[8 * 32];
        for (int i = 0; i < q.length; i++) {
            q[i] = (i % 4 == 1 || i % 4 == 2) ? 0f : 0.5f + i;
        }
        t.put(Q, HostTensor.fromFloats(DType.BF16, new long[] {8, 32}, q));
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(DType.BF16, new long[] {10, 8}, new float[80]));
        Path hf = tmp.resolve("in/hf");
        HfDirectoryWriter.write(hf, "{\"model_type\":\"llama\"}", Map.of(), t, Map.of("format", "pt"), 1L << 30);
        Path sparse = tmp.resolve("in/sparse");
        CliRun r = run("convert", "--from", "hf", "--to", "sparse", "--pattern", "2:4", "--sparse-codec", codec,
                hf.toString(), sparse.toString());
        assertThat(r.code()).as(r.err()).isZero();
        return sparse;
    }

    private Path compressed(String name) {
        QuantizationSpec spec = new QuantizationSpec(4, true, 0);
        byte[] codes = new byte[4 * 16];
        for (int i = 0; i < codes.length; i++) {
            codes[i] = (byte) (i % 15 - 7);
        }
        float[] scales = {0.5f, 0.25f, 0.125f, 1f};
        QuantizedWeights qw = new QuantizedWeights(spec, 4, 16, codes, scales, new int[4]);
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        t.put(Q, HostTensor.fromFloats(DType.BF16, new long[] {4, 16}, qw.dequantize()));
        Path ct = tmp.resolve("in/" + name);
        CompressedTensorsWriter.write(DenseTensors.of(t, "mem"), Map.of("config.json",
                "{\"model_type\": \"llama\"}".getBytes(StandardCharsets.UTF_8)), Map.of(Q, qw), Optional.empty(), 1L << 30, ct);
        return ct;
    }

    /** Sets the bytes of one stored tensor (found by name in the header) to {@code value}. */
    private static void overwrite(Path file, String tensor, byte value) throws Exception {
        byte[] b = Files.readAllBytes(file);
        int n = (int) java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0);
        var header = new com.fasterxml.jackson.databind.ObjectMapper().readTree(new String(b, 8, n, StandardCharsets.UTF_8));
        var off = header.get(tensor).get("data_offsets");
        Arrays.fill(b, 8 + n + off.get(0).asInt(), 8 + n + off.get(1).asInt(), value);
        Files.write(file, b);
    }

    private void assertRefusedLeavingNothing(Path out, String... args) throws Exception {
        CliRun r = run(args);
        assertThat(r.code()).as(r.out() + r.err()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(out).doesNotExist();
        try (Stream<Path> s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactly("in");
        }
    }

    @Test
    void corruptSparseIndicesExit3WithNoOutputOrTempDirectory() throws Exception {
        Path sparse = sparse();
        // every 2-bit index 3 in every group: not strictly increasing -> detected while writing the output
        overwrite(sparse.resolve("model.safetensors"), Q + ".indices", (byte) 0xFF);
        Path out = tmp.resolve("out");
        assertRefusedLeavingNothing(out, "decompress", sparse.toString(), out.toString());
        assertRefusedLeavingNothing(out, "convert", "--from", "sparse", "--to", "hf", sparse.toString(), out.toString());
    }

    @Test
    void corruptDeflatedIndicesExit3WithNoOutputOrTempDirectory() throws Exception {
        Path sparse = sparse("deflate");
        // 0xFF starts a block of the reserved type 3: no valid raw DEFLATE stream
        overwrite(sparse.resolve("model.safetensors"), Q + ".indices.deflate", (byte) 0xFF);
        Path out = tmp.resolve("out");
        assertRefusedLeavingNothing(out, "decompress", sparse.toString(), out.toString());
        assertRefusedLeavingNothing(out, "convert", "--from", "sparse", "--to", "sparse", sparse.toString(), out.toString());
        CliRun r = run("decompress", sparse.toString(), out.toString());
        assertThat(r.err()).contains("model.safetensors").contains(Q + ".indices.deflate")
                .contains("not a valid raw DEFLATE stream");
    }

    @Test
    void truncatedSparseFileExits3WithNoOutput() throws Exception {
        Path sparse = sparse();
        Path f = sparse.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(f);
        Files.write(f, Arrays.copyOf(b, b.length - 7));
        Path out = tmp.resolve("out");
        assertRefusedLeavingNothing(out, "decompress", sparse.toString(), out.toString());
        assertRefusedLeavingNothing(out, "convert", "--from", "sparse", "--to", "hf", sparse.toString(), out.toString());
    }

    @Test
    void corruptCompressedTensorsExit3WithNoOutput() throws Exception {
        Path ct = compressed("ct");
        Path out = tmp.resolve("out");
        // weight_shape becomes [0x0F0F0F0F0F0F0F0F, same]; weight_packed holds 4 x 16 codes
        overwrite(ct.resolve("model.safetensors"), "model.layers.0.self_attn.q_proj.weight_shape", (byte) 0x0F);
        assertRefusedLeavingNothing(out, "decompress", ct.toString(), out.toString());
        assertRefusedLeavingNothing(out, "convert", "--from", "compressed-tensors", "--to", "hf", ct.toString(), out.toString());
        // and a garbage quantization_config
        Path ct2 = compressed("ct2");
        Files.writeString(ct2.resolve("config.json"), "{\"quantization_config\": {\"quant_method\": \"compressed-tensors\","
                + " \"format\": \"pack-quantized\", \"config_groups\": {\"group_0\": {\"weights\": {\"num_bits\": \"four\"}}}}}");
        assertRefusedLeavingNothing(out, "decompress", ct2.toString(), out.toString());
        assertRefusedLeavingNothing(out, "convert", "--from", "compressed-tensors", "--to", "sparse", ct2.toString(),
                out.toString());
    }
}
