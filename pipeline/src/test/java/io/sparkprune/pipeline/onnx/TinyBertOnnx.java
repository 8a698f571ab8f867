package io.sparkprune.pipeline.onnx;

import com.google.protobuf.ByteString;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.AttributeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.GraphProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.NodeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.OperatorSetIdProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ValueInfoProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Builds small BERT-shaped ONNX graphs the way torch.onnx.export lays them out (named biases and
 * LayerNorm parameters, anonymous {@code onnx::MatMul_N} weights stored in x out, scoped node
 * names), from parameters generated here in HF layout. {@link #expected} keeps those HF-layout
 * values, the reference the importer's output is compared against.
 */
final class TinyBertOnnx {

    static final int HIDDEN = 8;
    static final int HEADS = 2;
    static final int HEAD_DIM = 4;
    static final int INTERMEDIATE = 16;
    static final int VOCAB = 11;
    static final int MAX_POS = 7;
    static final int TYPE_VOCAB = 2;
    static final int LAYERS = 2;

    /** How the attention Reshape target shape is given. */
    enum ReshapeStyle {
        /** Concat of dynamic Unsqueeze outputs and Constant nodes [heads], [head_dim] (torch legacy exporter). */
        CONCAT_CONSTANTS,
        /** One int64 initializer [0, 0, heads, head_dim] in int64_data. */
        INITIALIZER,
        /** Concat ending in Constant [-1] and Constant [head_dim]. */
        CONCAT_MINUS_ONE
    }

    String prefix = "";
    boolean typedFloats = false;
    boolean layerNormOp = false;
    float eps = 1e-12f;
    ReshapeStyle reshape = ReshapeStyle.CONCAT_CONSTANTS;
    boolean pooler = false;

    /** HF name → values in HF layout (Linear weights out x in), row-major. */
    final Map<String, float[]> expected = new LinkedHashMap<>();
    /** HF name → HF shape. */
    final Map<String, long[]> expectedShapes = new LinkedHashMap<>();

    private final Random random = new Random(20240611L);
    private GraphProto.Builder graph;
    private int anon = 100;
    private int constants = 0;

    ModelProto build() {
        expected.clear();
        expectedShapes.clear();
        graph = GraphProto.newBuilder().setName("torch_jit");
        param("embeddings.word_embeddings.weight", VOCAB, HIDDEN);
        param("embeddings.position_embeddings.weight", MAX_POS, HIDDEN);
        param("embeddings.token_type_embeddings.weight", TYPE_VOCAB, HIDDEN);
        node("Gather", "/embeddings/word_embeddings/Gather", List.of(prefix + "embeddings.word_embeddings.weight", "input_ids"),
                "/embeddings/word_embeddings/Gather_output_0");
        node("Gather", "/embeddings/token_type_embeddings/Gather",
                List.of(prefix + "embeddings.token_type_embeddings.weight", "token_type_ids"),
                "/embeddings/token_type_embeddings/Gather_output_0");
        node("Add", "/embeddings/Add", List.of("/embeddings/word_embeddings/Gather_output_0",
                "/embeddings/token_type_embeddings/Gather_output_0"), "/embeddings/Add_output_0");
        String x = layerNorm("/embeddings/LayerNorm", "embeddings.LayerNorm", "/embeddings/Add_output_0");
        for (int l = 0; l < LAYERS; l++) {
            String scope = "/encoder/layer." + l;
            String hf = "encoder.layer." + l;
            String q = linear(scope + "/attention/self/query", hf + ".attention.self.query", x, HIDDEN, HIDDEN);
            String k = linear(scope + "/attention/self/key", hf + ".attention.self.key", x, HIDDEN, HIDDEN);
            String v = linear(scope + "/attention/self/value", hf + ".attention.self.value", x, HIDDEN, HIDDEN);
            String qh = splitHeads(scope + "/attention/self", q, 0);
            String kh = splitHeads(scope + "/attention/self", k, 1);
            String vh = splitHeads(scope + "/attention/self", v, 2);
            node("MatMul", scope + "/attention/self/MatMul", List.of(qh, kh), scope + "/attention/self/MatMul_output_0");
            node("Softmax", scope + "/attention/self/Softmax", List.of(scope + "/attention/self/MatMul_output_0"),
                    scope + "/attention/self/Softmax_output_0");
            node("MatMul", scope + "/attention/self/MatMul_1", List.of(scope + "/attention/self/Softmax_output_0", vh),
                    scope + "/attention/self/MatMul_1_output_0");
            String o = linear(scope + "/attention/output/dense", hf + ".attention.output.dense",
                    scope + "/attention/self/MatMul_1_output_0", HIDDEN, HIDDEN);
            node("Add", scope + "/attention/output/Add", List.of(o, x), scope + "/attention/output/Add_output_0");
            String a = layerNorm(scope + "/attention/output/LayerNorm", hf + ".attention.output.LayerNorm",
                    scope + "/attention/output/Add_output_0");
            String i = linear(scope + "/intermediate/dense", hf + ".intermediate.dense", a, HIDDEN, INTERMEDIATE);
            String act = scope + "/intermediate/intermediate_act_fn";
            String sqrt2 = constantFloat(act + "/Constant", 1.4142135f);
            node("Div", act + "/Div", List.of(i, sqrt2), act + "/Div_output_0");
            node("Erf", act + "/Erf", List.of(act + "/Div_output_0"), act + "/Erf_output_0");
            node("Mul", act + "/Mul", List.of(i, act + "/Erf_output_0"), act + "/Mul_output_0");
            String out = linear(scope + "/output/dense", hf + ".output.dense", act + "/Mul_output_0", INTERMEDIATE, HIDDEN);
            node("Add", scope + "/output/Add", List.of(out, a), scope + "/output/Add_output_0");
            x = layerNorm(scope + "/output/LayerNorm", hf + ".output.LayerNorm", scope + "/output/Add_output_0");
        }
        if (pooler) {
            String p = linear("/pooler/dense", "pooler.dense", x, HIDDEN, HIDDEN);
            node("Tanh", "/pooler/activation/Tanh", List.of(p), "pooler_output");
        }
        graph.addOutput(ValueInfoProto.newBuilder().setName(x));
        return ModelProto.newBuilder()
                .setIrVersion(8)
                .setProducerName("pytorch")
                .setProducerVersion("2.0.1")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(layerNormOp ? 17 : 11))
                .setGraph(graph)
                .build();
    }

    /** An HF-named parameter stored as an initializer (HF layout), returning its initializer name. */
    private String param(String hfName, long... shape) {
        float[] values = randomValues(shape);
        expected.put(hfName, values);
        expectedShapes.put(hfName, shape);
        graph.addInitializer(floatTensor(prefix + hfName, shape, values));
        return prefix + hfName;
    }

    /** torch Linear exported as MatMul(x, W^T as onnx::MatMul_N [in, out]) + Add(bias, .). */
    private String linear(String scope, String hfModule, String input, int in, int out) {
        float[] w = randomValues(new long[] {out, in});
        expected.put(hfModule + ".weight", w);
        expectedShapes.put(hfModule + ".weight", new long[] {out, in});
        float[] wt = new float[w.length];
        for (int r = 0; r < out; r++) {
            for (int c = 0; c < in; c++) {
                wt[c * out + r] = w[r * in + c];
            }
        }
        String wName = "onnx::MatMul_" + (anon++);
        graph.addInitializer(floatTensor(wName, new long[] {in, out}, wt));
        String bias = param(hfModule + ".bias", out);
        node("MatMul", scope + "/MatMul", List.of(input, wName), scope + "/MatMul_output_0");
        node("Add", scope + "/Add", List.of(bias, scope + "/MatMul_output_0"), scope + "/Add_output_0");
        return scope + "/Add_output_0";
    }

    private String splitHeads(String scope, String input, int k) {
        String shape;
        switch (reshape) {
            case INITIALIZER -> {
                shape = "onnx::Reshape_" + (anon++);
                graph.addInitializer(TensorProto.newBuilder().setName(shape).setDataType(TensorProto.DataType.INT64_VALUE)
                        .addDims(4).addInt64Data(0).addInt64Data(0).addInt64Data(HEADS).addInt64Data(HEAD_DIM));
            }
            default -> {
                node("Shape", scope + "/Shape_" + k, List.of(input), scope + "/Shape_" + k + "_output_0");
                node("Unsqueeze", scope + "/Unsqueeze_" + k, List.of(scope + "/Shape_" + k + "_output_0"),
                        scope + "/Unsqueeze_" + k + "_output_0");
                String h = constantInts(scope + "/Constant_h" + k, reshape == ReshapeStyle.CONCAT_MINUS_ONE ? -1 : HEADS);
                String d = constantInts(scope + "/Constant_d" + k, HEAD_DIM);
                shape = scope + "/Concat_" + k + "_output_0";
                graph.addNode(NodeProto.newBuilder().setOpType("Concat").setName(scope + "/Concat_" + k)
                        .addInput(scope + "/Unsqueeze_" + k + "_output_0").addInput(scope + "/Unsqueeze_" + k + "_output_0")
                        .addInput(h).addInput(d).addOutput(shape)
                        .addAttribute(AttributeProto.newBuilder().setName("axis").setType(AttributeProto.AttributeType.INT).setI(0)));
            }
        }
        node("Reshape", scope + "/Reshape_" + k, List.of(input, shape), scope + "/Reshape_" + k + "_output_0");
        node("Transpose", scope + "/Transpose_" + k, List.of(scope + "/Reshape_" + k + "_output_0"),
                scope + "/Transpose_" + k + "_output_0");
        return scope + "/Transpose_" + k + "_output_0";
    }

    private String layerNorm(String scope, String hfModule, String input) {
        String w = param(hfModule + ".weight", HIDDEN);
        String b = param(hfModule + ".bias", HIDDEN);
        if (layerNormOp) {
            graph.addNode(NodeProto.newBuilder().setOpType("LayerNormalization").setName(scope + "/LayerNormalization")
                    .addInput(input).addInput(w).addInput(b).addOutput(scope + "/LayerNormalization_output_0")
                    .addAttribute(AttributeProto.newBuilder().setName("axis").setType(AttributeProto.AttributeType.INT).setI(-1))
                    .addAttribute(AttributeProto.newBuilder().setName("epsilon").setType(AttributeProto.AttributeType.FLOAT).setF(eps)));
            return scope + "/LayerNormalization_output_0";
        }
        node("ReduceMean", scope + "/ReduceMean", List.of(input), scope + "/ReduceMean_output_0");
        node("Sub", scope + "/Sub", List.of(input, scope + "/ReduceMean_output_0"), scope + "/Sub_output_0");
        String two = constantFloat(scope + "/Constant", 2f);
        node("Pow", scope + "/Pow", List.of(scope + "/Sub_output_0", two), scope + "/Pow_output_0");
        node("ReduceMean", scope + "/ReduceMean_1", List.of(scope + "/Pow_output_0"), scope + "/ReduceMean_1_output_0");
        String e = constantFloat(scope + "/Constant_1", eps);
        node("Add", scope + "/Add", List.of(scope + "/ReduceMean_1_output_0", e), scope + "/Add_output_0");
        node("Sqrt", scope + "/Sqrt", List.of(scope + "/Add_output_0"), scope + "/Sqrt_output_0");
        node("Div", scope + "/Div", List.of(scope + "/Sub_output_0", scope + "/Sqrt_output_0"), scope + "/Div_output_0");
        node("Mul", scope + "/Mul", List.of(scope + "/Div_output_0", w), scope + "/Mul_output_0");
        node("Add", scope + "/Add_1", List.of(scope + "/Mul_output_0", b), scope + "/Add_1_output_0");
        return scope + "/Add_1_output_0";
    }

    private String constantFloat(String name, float value) {
        String out = name + "_output_" + (constants++);
        ByteBuffer raw = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, value);
        graph.addNode(NodeProto.newBuilder().setOpType("Constant").setName(name).addOutput(out)
                .addAttribute(AttributeProto.newBuilder().setName("value").setType(AttributeProto.AttributeType.TENSOR)
                        .setT(TensorProto.newBuilder().setDataType(TensorProto.DataType.FLOAT_VALUE).setRawData(ByteString.copyFrom(raw)))));
        return out;
    }

    private String constantInts(String name, long value) {
        String out = name + "_output_" + (constants++);
        ByteBuffer raw = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
        graph.addNode(NodeProto.newBuilder().setOpType("Constant").setName(name).addOutput(out)
                .addAttribute(AttributeProto.newBuilder().setName("value").setType(AttributeProto.AttributeType.TENSOR)
                        .setT(TensorProto.newBuilder().setDataType(TensorProto.DataType.INT64_VALUE).addDims(1)
                                .setRawData(ByteString.copyFrom(raw)))));
        return out;
    }

    private void node(String op, String name, List<String> inputs, String output) {
        graph.addNode(NodeProto.newBuilder().setOpType(op).setName(name).addAllInput(inputs).addOutput(output));
    }

    private TensorProto floatTensor(String name, long[] shape, float[] values) {
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.FLOAT_VALUE);
        for (long d : shape) {
            t.addDims(d);
        }
        if (typedFloats) {
            for (float v : values) {
                t.addFloatData(v);
            }
        } else {
            ByteBuffer raw = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
            raw.asFloatBuffer().put(values);
            t.setRawData(ByteString.copyFrom(raw.array()));
        }
        return t.build();
    }

    private float[] randomValues(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return v;
    }

    /** @return the index of the initializer with that name in the graph */
    static int initializerIndex(ModelProto m, String name) {
        for (int i = 0; i < m.getGraph().getInitializerCount(); i++) {
            if (m.getGraph().getInitializer(i).getName().equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException("no initializer " + name);
    }
}
