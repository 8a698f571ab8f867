package io.sparkprune.jobs.tools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.jobs.cli.ExitCodes;
import io.sparkprune.jobs.cli.SparkPruneCli;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.forward.ParameterSpec;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.TransformerModel;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.ModelConfigException;
import io.sparkprune.pipeline.model.ModelConfigs;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The random checkpoint generator and its byte-level tokenizer. */
class RandomLlamaTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    private static final RandomLlama.Spec TINY = RandomLlama.Spec.of(64, 2, 4, 2, 128, 300, DType.BF16, 7);

    @Test
    void byteSymbolsAreGpt2sBytesToUnicode() {
        // Anchors from GPT-2's vocabulary: space is "Ġ" (U+0120), newline "Ċ" (U+010A), byte 0 U+0100,
        // DEL U+0121, soft hyphen (0xAD) the last remapped byte U+0143; printable bytes map to themselves.
        assertThat(ByteLevelTokenizer.byteSymbol(' ')).isEqualTo('\u0120');
        assertThat(ByteLevelTokenizer.byteSymbol('\n')).isEqualTo('\u010A');
        assertThat(ByteLevelTokenizer.byteSymbol(0)).isEqualTo('\u0100');
        assertThat(ByteLevelTokenizer.byteSymbol(127)).isEqualTo('\u0121');
        assertThat(ByteLevelTokenizer.byteSymbol(0xAD)).isEqualTo('\u0143');
        assertThat(ByteLevelTokenizer.byteSymbol('a')).isEqualTo('a');
        assertThat(ByteLevelTokenizer.byteSymbol(0xE9)).isEqualTo('\u00E9');
        Set<Character> all = new HashSet<>();
        for (int b = 0; b < 256; b++) {
            all.add(ByteLevelTokenizer.byteSymbol(b));
        }
        assertThat(all).hasSize(256);
        assertThatThrownBy(() -> ByteLevelTokenizer.byteSymbol(256)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void tokenizerEncodesTextAsItsUtf8Bytes() {
        try (HfTokenizer tok = HfTokenizer.fromBytes(ByteLevelTokenizer.tokenizerJson(), "byte-level tokenizer.json")) {
            assertThat(tok.encode("hello", true)).containsExactly(104, 101, 108, 108, 111);
            assertThat(tok.vocabSize()).isEqualTo(256);
            String text = "Héllo, wörld!\n  The committee's 2nd report — ünïcode ✓\t";
            byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
            int[] expected = new int[utf8.length];
            for (int i = 0; i < utf8.length; i++) {
                expected[i] = utf8[i] & 0xff;
            }
            assertThat(tok.encode(text, true)).containsExactly(expected);
            assertThat(tok.encode(text, false)).containsExactly(expected);
            assertThat(tok.decode(expected, false)).isEqualTo(text);
        }
    }

    @Test
    void writesAShardedCheckpointThatLoadsAndRuns() throws Exception {
        RandomLlama.Spec spec = TINY.withMaxShardBytes(40_000);
        Path dir = tmp.resolve("tiny");
        RandomLlama.Summary s = RandomLlama.write(spec, dir);

        LlamaConfig cfg = (LlamaConfig) ModelConfigs.read(dir);
        assertThat(cfg.hiddenSize()).isEqualTo(64);
        assertThat(cfg.numHiddenLayers()).isEqualTo(2);
        assertThat(cfg.numAttentionHeads()).isEqualTo(4);
        assertThat(cfg.numKeyValueHeads()).isEqualTo(2);
        assertThat(cfg.intermediateSize()).isEqualTo(128);
        assertThat(cfg.vocabSize()).isEqualTo(300);
        assertThat(cfg.tieWordEmbeddings()).isFalse();
        assertThat(cfg.torchDtype()).isEqualTo("bfloat16");
        assertThat(dir.resolve("tokenizer.json")).hasBinaryContent(ByteLevelTokenizer.tokenizerJson());
        assertThat(dir.resolve(ShardedCheckpoint.INDEX_FILE)).exists();
        assertThat(s.files().size()).isGreaterThan(2);
        try (Stream<Path> files = Files.list(tmp)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly("tiny"); // no temporary left
        }

        ModelAdapter a = ModelAdapter.of(cfg);
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(dir)) {
            ck.validate();
            assertThat(ck.files()).containsExactlyElementsOf(s.files());
            // exactly the tensors the adapter reads, with its shapes, in the generator's dtype
            Map<String, long[]> expected = new java.util.LinkedHashMap<>();
            for (ParameterSpec p : a.globalParameters(null)) {
                expected.put(p.name(), p.shape());
            }
            for (int l = 0; l < 2; l++) {
                for (ParameterSpec p : a.blockParameters()) {
                    expected.put(a.layerPrefix(l) + p.name(), p.shape());
                }
            }
            assertThat(ck.tensorNames()).containsExactlyInAnyOrderElementsOf(expected.keySet());
            long params = 0;
            for (Map.Entry<String, long[]> e : expected.entrySet()) {
                assertThat(ck.info(e.getKey()).shape()).as(e.getKey()).isEqualTo(e.getValue());
                assertThat(ck.info(e.getKey()).dtype()).isEqualTo(DType.BF16);
                params += HostTensor.numel(e.getValue());
            }
            assertThat(s.parameters()).isEqualTo(params);
            assertThat(s.tensorBytes()).isEqualTo(2 * params);
            assertThat(ck.tensorNames().get(0)).isEqualTo("model.embed_tokens.weight");

            // norms are 1; the rest ~ N(0, 0.02): sample mean and standard deviation over all weights
            assertThat(ck.read("model.layers.1.input_layernorm.weight").toFloatArray()).containsOnly(1f);
            assertThat(ck.read("model.norm.weight").toFloatArray()).containsOnly(1f);
            double sum = 0;
            double sq = 0;
            long n = 0;
            for (String name : ck.tensorNames()) {
                if (!name.endsWith("norm.weight")) {
                    for (float v : ck.read(name).toFloatArray()) {
                        sum += v;
                        sq += (double) v * v;
                        n++;
                    }
                }
            }
            double mean = sum / n;
            double std = Math.sqrt(sq / n - mean * mean);
            // n ≈ 2e5: the sample mean's standard error is 0.02/sqrt(n) ≈ 4.5e-5
            assertThat(mean).isCloseTo(0, within(3e-4));
            assertThat(std).isCloseTo(RandomLlama.INIT_STD, within(4e-4));

            // each row is the per-row generator's values rounded to bf16
            float[] q = ck.readRows("model.layers.1.self_attn.k_proj.weight", 5, 3).toFloatArray();
            float[] ref = HostTensor.fromFloats(DType.BF16, new long[] {3, 64},
                    RandomLlama.rows(7, "model.layers.1.self_attn.k_proj.weight", 5, 3, 64)).toFloatArray();
            assertThat(q).containsExactly(ref);
        }

        // the forward pass is well defined: finite logits that are not all equal
        try (CpuBackend be = CpuBackend.create(1); TransformerModel m = TransformerModel.open(dir, be)) {
            float[] logits = m.logits(TokenBatch.of(new int[][] {{104, 101, 108, 108, 111}, {32, 299, 0}}));
            assertThat(logits).hasSize(8 * 300);
            float min = Float.POSITIVE_INFINITY;
            float max = Float.NEGATIVE_INFINITY;
            for (float v : logits) {
                assertThat(Float.isFinite(v)).isTrue();
                min = Math.min(min, v);
                max = Math.max(max, v);
            }
            assertThat(max).isGreaterThan(min);
        }
    }

    @Test
    void outputDependsOnlyOnTheSpec() throws Exception {
        Path a = tmp.resolve("a");
        Path b = tmp.resolve("b");
        Path c = tmp.resolve("c");
        RandomLlama.Spec spec = RandomLlama.Spec.of(32, 1, 2, 2, 64, 256, DType.F32, 3);
        RandomLlama.write(spec, a);
        RandomLlama.write(spec, b);
        RandomLlama.write(spec.withSeed(4), c);
        for (String f : List.of("config.json", "tokenizer.json", "model.safetensors")) {
            assertThat(Files.readAllBytes(b.resolve(f))).as(f).isEqualTo(Files.readAllBytes(a.resolve(f)));
        }
        try (ShardedCheckpoint ca = ShardedCheckpoint.open(a); ShardedCheckpoint cc = ShardedCheckpoint.open(c)) {
            for (String name : ca.tensorNames()) {
                if (!name.endsWith("norm.weight")) {
                    assertThat(cc.read(name)).as(name).isNotEqualTo(ca.read(name));
                }
            }
        }
    }

    @Test
    void aTensorOfSeveralChunksEqualsThePerRowGenerator() {
        // 8192 x 1024 = 2 chunks of 2^22 elements
        RandomLlama.Spec spec = new RandomLlama.Spec(1024, 1, 8, 8, 8, 8192, DType.F16, 11, Long.MAX_VALUE, true, 64);
        Path dir = tmp.resolve("wide");
        RandomLlama.write(spec, dir);
        try (ShardedCheckpoint ck = ShardedCheckpoint.open(dir)) {
            assertThat(ck.contains("lm_head.weight")).isFalse();
            for (long r0 : new long[] {0, 4095, 4096, 8190}) {
                float[] got = ck.readRows("model.embed_tokens.weight", r0, 2).toFloatArray();
                float[] ref = HostTensor.fromFloats(DType.F16, new long[] {2, 1024},
                        RandomLlama.rows(11, "model.embed_tokens.weight", r0, 2, 1024)).toFloatArray();
                assertThat(got).as("rows from %d", r0).containsExactly(ref);
            }
        }
    }

    @Test
    void badSpecsAndOccupiedTargetsAreTypedErrorsThatLeaveNothing() throws Exception {
        Path dir = tmp.resolve("x");
        assertThatThrownBy(() -> RandomLlama.write(TINY.withSeed(1).withMaxShardBytes(0), dir))
                .isInstanceOf(GeneratorException.class).hasMessageContaining("shard");
        assertThatThrownBy(() -> RandomLlama.write(RandomLlama.Spec.of(64, 2, 4, 2, 128, 100, DType.F32, 1), dir))
                .isInstanceOf(GeneratorException.class).hasMessageContaining("vocab 100").hasMessageContaining("--vocab 256");
        assertThatThrownBy(() -> RandomLlama.write(RandomLlama.Spec.of(64, 2, 5, 5, 128, 256, DType.F32, 1), dir))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("num_attention_heads");
        assertThatThrownBy(() -> RandomLlama.write(RandomLlama.Spec.of(64, 2, 4, 2, 128, 256, DType.I32, 1), dir))
                .isInstanceOf(GeneratorException.class).hasMessageContaining("bf16, f16 or f32");
        assertThat(dir).doesNotExist();
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("keep.txt"), "mine");
        assertThatThrownBy(() -> RandomLlama.write(TINY, dir))
                .isInstanceOf(GeneratorException.class).hasMessageContaining("already exists");
        assertThat(dir.resolve("keep.txt")).hasContent("mine");
        try (Stream<Path> files = Files.list(tmp)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly("x");
        }
    }

    private record Result(int code, String out, String err) {
    }

    private static Result cli(String... args) {
        CommandLine cl = SparkPruneCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return new Result(cl.execute(args), out.toString(), err.toString());
    }

    @Test
    void generateCommandWritesTheSameCheckpointAsTheApi() throws Exception {
        Path viaCli = tmp.resolve("cli");
        Result r = cli("generate", "llama", "-o", viaCli.toString(), "--hidden", "64", "--layers", "2", "--heads", "4",
                "--kv-heads", "2", "--intermediate", "128", "--vocab", "300", "--dtype", "bf16", "--seed", "7",
                "--max-shard-bytes", "40000");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("llama h64 L2 heads 4/2 i128 v300 BF16 seed 7").contains(viaCli.toString());
        Path viaApi = tmp.resolve("api");
        RandomLlama.write(TINY.withMaxShardBytes(40_000), viaApi);
        try (Stream<Path> files = Files.list(viaApi)) {
            for (Path f : files.toList()) {
                assertThat(viaCli.resolve(f.getFileName())).as(f.getFileName().toString())
                        .hasSameBinaryContentAs(f);
            }
        }
        JsonNode config = JSON.readTree(viaCli.resolve("config.json").toFile());
        assertThat(config.get("model_type").asText()).isEqualTo("llama");

        Result again = cli("generate", "llama", "-o", viaCli.toString());
        assertThat(again.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(again.err()).contains("already exists").doesNotContain("\tat ");
        Result badVocab = cli("generate", "llama", "-o", tmp.resolve("v").toString(), "--vocab", "10");
        assertThat(badVocab.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(cli("generate", "gpt2", "-o", tmp.resolve("g").toString()).code()).isEqualTo(ExitCodes.USAGE);
        assertThat(cli("generate", "llama", "-o", tmp.resolve("d").toString(), "--dtype", "f64").code())
                .isEqualTo(ExitCodes.USAGE);
    }
}
