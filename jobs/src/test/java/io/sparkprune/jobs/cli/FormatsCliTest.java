package io.sparkprune.jobs.cli;

import static io.sparkprune.jobs.cli.CliRun.run;

import static org.assertj.core.api.Assertions.assertThat;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.hf.HfDirectoryWriter;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** convert --to sparse, inspect's byte counts, decompress back bit for bit, refusals with exit codes. */
class FormatsCliTest {

    @TempDir
    Path tmp;

    static final String Q = "model.layers.0.self_attn.q_proj.weight";
    static final String UP = "model.layers.0.mlp.up_proj.weight";

    private Path toy() {
        String config = "{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
                + "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":10}";
        LinkedHashMap<String, HostTensor> t = new LinkedHashMap<>();
        float[] q = new float[8 * 32];
        for (int i = 0; i < q.length; i++) {
            q[i] = (i % 4 == 1 || i % 4 == 2) ? 0f : 0.5f + i;
        }
        t.put(Q, HostTensor.fromFloats(DType.BF16, new long[] {8, 32}, q));
        float[] up = new float[16 * 8];
        for (int i = 0; i < up.length; i++) {
            up[i] = i % 8 == 0 ? 0f : i; // one zero per row: not worth compressing
        }
        t.put(UP, HostTensor.fromFloats(DType.BF16, new long[] {16, 8}, up));
        t.put("model.embed_tokens.weight", HostTensor.fromFloats(DType.BF16, new long[] {10, 8}, new float[80]));
        Path dir = tmp.resolve("toy");
        HfDirectoryWriter.write(dir, config, Map.of(), t, Map.of("format", "pt"), 1L << 30);
        return dir;
    }

    @Test
    void hfToSparseInspectDecompressRoundTrip() throws Exception {
        Path hf = toy();
        Path sparse = tmp.resolve("sparse");
        CliRun c = run("convert", "--from", "hf", "--to", "sparse", hf.toString(), sparse.toString());
        assertThat(c.code()).as(c.err()).isZero();
        assertThat(c.out()).contains("1 of 3 tensors compressed (2:4)");

        CliRun i = run("inspect", sparse.toString());
        assertThat(i.code()).as(i.err()).isZero();
        assertThat(i.out()).contains("format: sparse");
        // q_proj: 8 x 16 bf16 values (256 bytes) + 8 x 4 index bytes = 288 of 512 dense
        assertThat(i.out()).containsPattern(Q.replace(".", "\\.") + "\\s+2:4\\s+512\\s+288\\s+0\\.5625");

        Path back = tmp.resolve("back");
        CliRun d = run("decompress", sparse.toString(), back.toString());
        assertThat(d.code()).as(d.err()).isZero();
        assertThat(Files.readAllBytes(back.resolve("config.json"))).isEqualTo(Files.readAllBytes(hf.resolve("config.json")));
        try (ShardedCheckpoint a = ShardedCheckpoint.open(hf); ShardedCheckpoint b = ShardedCheckpoint.open(back)) {
            assertThat(b.tensorNames()).containsExactlyElementsOf(a.tensorNames());
            for (String n : a.tensorNames()) {
                assertThat(b.read(n)).as(n).isEqualTo(a.read(n));
            }
        }
        // convert --from sparse --to hf is the same as decompress
        CliRun h = run("convert", "--from", "sparse", "--to", "hf", sparse.toString(), tmp.resolve("h2").toString());
        assertThat(h.code()).as(h.err()).isZero();
    }

    @Test
    void aForcedTwoOfFourOnANonTwoOfFourTargetExitsWith3AndWritesNothing() {
        Path hf = toy();
        Path sparse = tmp.resolve("sparse");
        CliRun r = run("convert", "--from", "hf", "--to", "sparse", "--pattern", "2:4", hf.toString(), sparse.toString());
        assertThat(r.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains(UP, "row 0, group 0");
        assertThat(sparse).doesNotExist();
        assertThat(tmp.toFile().list()).containsExactly("toy");
    }

    @Test
    void wrongOrUnsupportedFormatsAreRefused() {
        Path hf = toy();
        CliRun wrong = run("convert", "--from", "sparse", "--to", "hf", hf.toString(), tmp.resolve("o").toString());
        assertThat(wrong.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(wrong.err()).contains("pass --from hf");
        CliRun ct = run("convert", "--from", "hf", "--to", "compressed-tensors", hf.toString(), tmp.resolve("o").toString());
        assertThat(ct.code()).isEqualTo(ExitCodes.USAGE);
        assertThat(tmp.resolve("o")).doesNotExist();
    }
}
