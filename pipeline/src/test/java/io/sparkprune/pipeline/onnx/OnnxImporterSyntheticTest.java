package io.sparkprune.pipeline.onnx;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.AttributeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.GraphProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.NodeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.OperatorSetIdProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.StringStringEntryProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Imports small BERT-shaped graphs built in {@link TinyBertOnnx} and checks every typed error. */
class OnnxImporterSyntheticTest {

    @TempDir
    Path dir;

    private Path write(String name, ModelProto m) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, m.toByteArray());
        return p;
    }

    /** Every imported tensor equals the HF-layout values the graph was built from, bit for bit. */
    private static void assertTensorsEqual(ImportedModel imported, TinyBertOnnx tiny) {
        assertThat(imported.tensors().keySet()).containsExactlyInAnyOrderElementsOf(tiny.expected.keySet());
        for (Map.Entry<String, float[]> e : tiny.expected.entrySet()) {
            HostTensor t = imported.tensors().get(e.getKey());
            assertThat(t.shape()).as(e.getKey()).containsExactly(tiny.expectedShapes.get(e.getKey()));
            float[] got = t.toFloatArray();
            int[] gotBits = new int[got.length];
            int[] wantBits = new int[got.length];
            for (int i = 0; i < got.length; i++) {
                gotBits[i] = Float.floatToRawIntBits(got[i]);
                wantBits[i] = Float.floatToRawIntBits(e.getValue()[i]);
            }
            assertThat(gotBits).as(e.getKey()).isEqualTo(wantBits);
        }
    }

    @Test
    void importsDecomposedLayerNormRawDataGraphFromFile() throws IOException {
        TinyBertOnnx tiny = new TinyBertOnnx();
        Path file = write("tiny.onnx", tiny.build());

        ImportedModel m = OnnxImporter.importModel(file);

        assertThat(m.source()).isEqualTo(file.toString());
        assertThat(m.configInt("hidden_size")).isEqualTo(8);
        assertThat(m.configInt("num_attention_heads")).isEqualTo(2);
        assertThat(m.configInt("num_hidden_layers")).isEqualTo(2);
        assertThat(m.configInt("intermediate_size")).isEqualTo(16);
        assertThat(m.configInt("vocab_size")).isEqualTo(11);
        assertThat(m.configInt("max_position_embeddings")).isEqualTo(7);
        assertThat(m.configInt("type_vocab_size")).isEqualTo(2);
        assertThat(m.config().get("layer_norm_eps").doubleValue()).isEqualTo(1e-12);
        assertThat(m.config().get("hidden_act").asText()).isEqualTo("gelu");
        assertTensorsEqual(m, tiny);
        assertThat(m.tensors()).doesNotContainKeys("pooler.dense.weight", "pooler.dense.bias");
    }

    @Test
    void importsTypedFieldsPrefixedNamesLayerNormalizationOpAndPooler() {
        TinyBertOnnx tiny = new TinyBertOnnx();
        tiny.prefix = "bert.";
        tiny.typedFloats = true;
        tiny.layerNormOp = true;
        tiny.eps = 1e-5f;
        tiny.reshape = TinyBertOnnx.ReshapeStyle.INITIALIZER;
        tiny.pooler = true;

        ImportedModel m = OnnxImporter.fromModelProto(tiny.build(), "tiny-typed");

        assertThat(m.config().get("layer_norm_eps").doubleValue()).isEqualTo(1e-5);
        assertThat(m.configInt("num_attention_heads")).isEqualTo(2);
        assertThat(m.config().get("hidden_act").asText()).isEqualTo("gelu");
        assertThat(m.tensors()).containsKeys("pooler.dense.weight", "pooler.dense.bias");
        assertThat(m.tensors().keySet()).noneMatch(k -> k.startsWith("bert."));
        assertTensorsEqual(m, tiny);
    }

    @Test
    void infersHeadsFromMinusOneInReshapeShape() {
        TinyBertOnnx tiny = new TinyBertOnnx();
        tiny.reshape = TinyBertOnnx.ReshapeStyle.CONCAT_MINUS_ONE;
        assertThat(OnnxImporter.fromModelProto(tiny.build(), "t").configInt("num_attention_heads")).isEqualTo(2);
    }

    @Test
    void tensorOrderIsEmbeddingsThenLayersInModuleOrder() {
        ImportedModel m = OnnxImporter.fromModelProto(new TinyBertOnnx().build(), "t");
        assertThat(m.tensors().keySet()).startsWith("embeddings.word_embeddings.weight",
                "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
                "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
                "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.bias");
        assertThat(m.tensors().keySet()).endsWith("encoder.layer.1.output.LayerNorm.weight", "encoder.layer.1.output.LayerNorm.bias");
    }

    // ---- typed errors -------------------------------------------------------------------------

    @Test
    void randomBytesAreRejectedNamingTheFile() throws IOException {
        byte[] junk = new byte[4096];
        new Random(7).nextBytes(junk);
        Path p = dir.resolve("junk.onnx");
        Files.write(p, junk);
        assertThatThrownBy(() -> OnnxImporter.importModel(p))
                .isInstanceOf(OnnxFormatException.class)
                .isInstanceOf(InvalidInputException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContaining("not");
    }

    @Test
    void truncatedFileIsRejectedNamingTheFile() throws IOException {
        byte[] whole = new TinyBertOnnx().build().toByteArray();
        Path p = dir.resolve("cut.onnx");
        Files.write(p, Arrays.copyOf(whole, whole.length / 2));
        assertThatThrownBy(() -> OnnxImporter.importModel(p))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContaining("truncated");
    }

    @Test
    void emptyMissingAndDirectoryPathsAreRejected() throws IOException {
        Path empty = Files.createFile(dir.resolve("empty.onnx"));
        assertThatThrownBy(() -> OnnxImporter.importModel(empty)).isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining(empty.toString()).hasMessageContaining("empty");
        Path missing = dir.resolve("nope.onnx");
        assertThatThrownBy(() -> OnnxImporter.importModel(missing)).isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining(missing.toString()).hasMessageContaining("does not exist");
        assertThatThrownBy(() -> OnnxImporter.importModel(dir)).isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("is a directory");
    }

    @Test
    void validOnnxOfANonBertModelIsRejected() throws IOException {
        // A one-layer classifier: y = Gemm(x, fc.weight, fc.bias, transB=1).
        GraphProto g = GraphProto.newBuilder().setName("mlp")
                .addInitializer(TensorProto.newBuilder().setName("fc.weight").setDataType(1).addDims(3).addDims(4)
                        .setRawData(ByteString.copyFrom(new byte[48])))
                .addInitializer(TensorProto.newBuilder().setName("fc.bias").setDataType(1).addDims(3)
                        .setRawData(ByteString.copyFrom(new byte[12])))
                .addNode(NodeProto.newBuilder().setOpType("Gemm").setName("/fc/Gemm").addInput("x").addInput("fc.weight")
                        .addInput("fc.bias").addOutput("y")
                        .addAttribute(AttributeProto.newBuilder().setName("transB").setType(AttributeProto.AttributeType.INT).setI(1)))
                .build();
        ModelProto m = ModelProto.newBuilder().setIrVersion(8).addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17))
                .setGraph(g).build();
        Path p = write("mlp.onnx", m);
        assertThatThrownBy(() -> OnnxImporter.importModel(p))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining(p.toString())
                .hasMessageContaining("not a BERT-family model")
                .hasMessageContaining("embeddings.word_embeddings.weight")
                .hasMessageContaining("fc.weight");
    }

    @Test
    void externalDataIsRejectedWithTheFix() {
        ModelProto m = new TinyBertOnnx().build();
        int i = TinyBertOnnx.initializerIndex(m, "embeddings.word_embeddings.weight");
        TensorProto ext = m.getGraph().getInitializer(i).toBuilder().clearRawData()
                .setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(StringStringEntryProto.newBuilder().setKey("location").setValue("model.onnx_data"))
                .addExternalData(StringStringEntryProto.newBuilder().setKey("offset").setValue("0"))
                .build();
        ModelProto withExt = m.toBuilder().setGraph(m.getGraph().toBuilder().setInitializer(i, ext)).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(withExt, "ext.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("ext.onnx")
                .hasMessageContaining("embeddings.word_embeddings.weight")
                .hasMessageContaining("external file")
                .hasMessageContaining("location=model.onnx_data")
                .hasMessageContaining("save_as_external_data=False");
    }

    @Test
    void matMulWeightOfAnUnknownModuleIsNamed() {
        ModelProto m = new TinyBertOnnx().build();
        GraphProto.Builder g = m.getGraph().toBuilder()
                .addInitializer(TensorProto.newBuilder().setName("onnx::MatMul_999").setDataType(1).addDims(8).addDims(3)
                        .setRawData(ByteString.copyFrom(new byte[96])))
                .addNode(NodeProto.newBuilder().setOpType("MatMul").setName("/classifier/MatMul").addInput("pooled")
                        .addInput("onnx::MatMul_999").addOutput("logits"));
        ModelProto bad = m.toBuilder().setGraph(g).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "cls.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("cls.onnx")
                .hasMessageContaining("'/classifier/MatMul'")
                .hasMessageContaining("onnx::MatMul_999");
    }

    @Test
    void inconsistentShapeIsReportedWithTensorName() {
        ModelProto m = new TinyBertOnnx().build();
        int i = TinyBertOnnx.initializerIndex(m, "encoder.layer.1.attention.self.query.bias");
        TensorProto shortBias = TensorProto.newBuilder().setName("encoder.layer.1.attention.self.query.bias").setDataType(1)
                .addDims(7).setRawData(ByteString.copyFrom(new byte[28])).build();
        ModelProto bad = m.toBuilder().setGraph(m.getGraph().toBuilder().setInitializer(i, shortBias)).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "shapes.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("shapes.onnx")
                .hasMessageContaining("'encoder.layer.1.attention.self.query.bias'")
                .hasMessageContaining("[7]")
                .hasMessageContaining("expected [8]");
    }

    @Test
    void rawDataOfTheWrongLengthIsReported() {
        ModelProto m = new TinyBertOnnx().build();
        int i = TinyBertOnnx.initializerIndex(m, "embeddings.LayerNorm.bias");
        TensorProto t = m.getGraph().getInitializer(i).toBuilder().setRawData(ByteString.copyFrom(new byte[30])).build();
        ModelProto bad = m.toBuilder().setGraph(m.getGraph().toBuilder().setInitializer(i, t)).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "len.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("'embeddings.LayerNorm.bias'")
                .hasMessageContaining("needs 32 bytes of raw_data, found 30");
    }

    @Test
    void missingParameterIsListed() {
        ModelProto m = new TinyBertOnnx().build();
        int i = TinyBertOnnx.initializerIndex(m, "encoder.layer.1.output.LayerNorm.weight");
        ModelProto bad = m.toBuilder().setGraph(m.getGraph().toBuilder().removeInitializer(i)).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "miss.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("lacks 1 BertModel parameter")
                .hasMessageContaining("encoder.layer.1.output.LayerNorm.weight");
    }

    @Test
    void headsThatCannotBeInferredAreReported() {
        ModelProto m = new TinyBertOnnx().build();
        GraphProto.Builder g = m.getGraph().toBuilder();
        for (int i = 0; i < g.getNodeCount(); i++) {
            NodeProto n = g.getNode(i);
            if (n.getOpType().equals("Reshape")) {
                g.setNode(i, n.toBuilder().setInput(1, "dynamic_shape"));
            }
        }
        ModelProto bad = m.toBuilder().setGraph(g).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "heads.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("num_attention_heads");
    }

    @Test
    void disagreeingLayerNormEpsilonsAreReported() {
        TinyBertOnnx tiny = new TinyBertOnnx();
        tiny.layerNormOp = true;
        ModelProto m = tiny.build();
        GraphProto.Builder g = m.getGraph().toBuilder();
        for (int i = 0; i < g.getNodeCount(); i++) {
            NodeProto n = g.getNode(i);
            if (n.getName().equals("/encoder/layer.1/output/LayerNorm/LayerNormalization")) {
                g.setNode(i, n.toBuilder().setAttribute(1, n.getAttribute(1).toBuilder().setF(1e-6f)));
            }
        }
        ModelProto bad = m.toBuilder().setGraph(g).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "eps.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("epsilons disagree")
                .hasMessageContaining("1.0E-6")
                .hasMessageContaining("1.0E-12");
    }

    @Test
    void robertaStylePositionIdsAreRejected() {
        ModelProto m = new TinyBertOnnx().build();
        GraphProto.Builder g = m.getGraph().toBuilder().addNode(NodeProto.newBuilder().setOpType("CumSum")
                .setName("/embeddings/CumSum").addInput("mask").addInput("axis").addOutput("pos"));
        ModelProto bad = m.toBuilder().setGraph(g).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "roberta.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("'/embeddings/CumSum'")
                .hasMessageContaining("RoBERTa");
    }

    @Test
    void nonFloatParameterIsRejected() {
        ModelProto m = new TinyBertOnnx().build();
        int i = TinyBertOnnx.initializerIndex(m, "embeddings.LayerNorm.weight");
        TensorProto q = TensorProto.newBuilder().setName("embeddings.LayerNorm.weight").setDataType(3).addDims(8)
                .setRawData(ByteString.copyFrom(new byte[8])).build();
        ModelProto bad = m.toBuilder().setGraph(m.getGraph().toBuilder().setInitializer(i, q)).build();
        assertThatThrownBy(() -> OnnxImporter.fromModelProto(bad, "int8.onnx"))
                .isInstanceOf(OnnxFormatException.class)
                .hasMessageContaining("'embeddings.LayerNorm.weight'")
                .hasMessageContaining("I8");
    }

    // ---- tokenizer lookup ---------------------------------------------------------------------

    @Test
    void findsTokenizerBesideTheModelPreferringTheStemSpecificName() throws IOException {
        Path sub = Files.createDirectories(dir.resolve("models/minilm"));
        Path model = sub.resolve("all-minilm-l6-v2.onnx");
        assertThat(OnnxImporter.findTokenizer(model)).isEmpty();
        Path generic = Files.writeString(sub.resolve("tokenizer.json"), "{}");
        assertThat(OnnxImporter.findTokenizer(model)).contains(generic);
        Path specific = Files.writeString(sub.resolve("all-minilm-l6-v2-tokenizer.json"), "{}");
        assertThat(OnnxImporter.findTokenizer(model)).contains(specific);
    }

    @Test
    void findsTokenizerInTheParentOfAnOnnxSubdirectory() throws IOException {
        Path sub = Files.createDirectories(dir.resolve("repo/onnx"));
        Path tok = Files.writeString(dir.resolve("repo/tokenizer.json"), "{}");
        assertThat(OnnxImporter.findTokenizer(sub.resolve("model.onnx"))).contains(tok);
    }
}
