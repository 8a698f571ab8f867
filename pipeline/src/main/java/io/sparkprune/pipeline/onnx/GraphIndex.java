package io.sparkprune.pipeline.onnx;

import io.sparkprune.pipeline.onnx.proto.OnnxProto.AttributeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.GraphProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.NodeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Look-up tables over one ONNX graph: initializers and Constant-node values by name, the node
 * producing each value and the nodes consuming it.
 */
final class GraphIndex {

    /** A weight reaching a MatMul/Gemm: the initializer, and whether a Transpose node sits between. */
    record WeightRef(String initializer, boolean viaTranspose) {
    }

    final GraphProto graph;
    private final Map<String, TensorProto> initializers = new HashMap<>();
    private final Map<String, TensorProto> constants = new HashMap<>();
    private final Map<String, NodeProto> producers = new HashMap<>();
    private final Map<String, List<NodeProto>> consumers = new HashMap<>();

    GraphIndex(GraphProto graph) {
        this.graph = graph;
        for (TensorProto t : graph.getInitializerList()) {
            initializers.put(t.getName(), t);
        }
        for (NodeProto n : graph.getNodeList()) {
            for (String out : n.getOutputList()) {
                producers.put(out, n);
            }
            for (String in : n.getInputList()) {
                if (!in.isEmpty()) {
                    consumers.computeIfAbsent(in, k -> new ArrayList<>()).add(n);
                }
            }
            if (isOp(n, "Constant") && n.getOutputCount() == 1) {
                TensorProto value = constantValue(n);
                if (value != null) {
                    constants.put(n.getOutput(0), value);
                }
            }
        }
    }

    /** @return the initializer of that name, or null */
    TensorProto initializer(String name) {
        return initializers.get(name);
    }

    /** @return the initializer or Constant-node value of that name, or null when it is computed */
    TensorProto constant(String name) {
        TensorProto t = initializers.get(name);
        return t != null ? t : constants.get(name);
    }

    /** @return the node producing the value, or null for graph inputs and initializers */
    NodeProto producer(String value) {
        return producers.get(value);
    }

    /** @return the nodes reading the value (empty when none) */
    List<NodeProto> consumers(String value) {
        return consumers.getOrDefault(value, List.of());
    }

    /**
     * @param value the B input of a MatMul or Gemm
     * @return the initializer it comes from, directly or through one 2-D Transpose node; null when
     *     it is a computed activation
     */
    WeightRef weightInput(String value) {
        if (initializers.containsKey(value)) {
            return new WeightRef(value, false);
        }
        NodeProto p = producers.get(value);
        if (p != null && isOp(p, "Transpose") && p.getInputCount() == 1 && initializers.containsKey(p.getInput(0))) {
            AttributeProto perm = attribute(p, "perm");
            boolean swap = perm == null || (perm.getIntsCount() == 2 && perm.getInts(0) == 1 && perm.getInts(1) == 0);
            if (swap) {
                return new WeightRef(p.getInput(0), true);
            }
        }
        return null;
    }

    /** @return true for a node of that op type in the default ONNX domain */
    static boolean isOp(NodeProto n, String opType) {
        return n.getOpType().equals(opType) && (n.getDomain().isEmpty() || n.getDomain().equals("ai.onnx"));
    }

    /** @return the named attribute, or null */
    static AttributeProto attribute(NodeProto n, String name) {
        for (AttributeProto a : n.getAttributeList()) {
            if (a.getName().equals(name)) {
                return a;
            }
        }
        return null;
    }

    /** The tensor a Constant node produces (attribute value, value_int(s), value_float(s)), or null. */
    private static TensorProto constantValue(NodeProto n) {
        for (AttributeProto a : n.getAttributeList()) {
            switch (a.getName()) {
                case "value":
                    return a.getT();
                case "value_int":
                    return TensorProto.newBuilder().setDataType(TensorProto.DataType.INT64_VALUE).addInt64Data(a.getI()).build();
                case "value_ints":
                    return TensorProto.newBuilder().setDataType(TensorProto.DataType.INT64_VALUE)
                            .addDims(a.getIntsCount()).addAllInt64Data(a.getIntsList()).build();
                case "value_float":
                    return TensorProto.newBuilder().setDataType(TensorProto.DataType.FLOAT_VALUE).addFloatData(a.getF()).build();
                case "value_floats":
                    return TensorProto.newBuilder().setDataType(TensorProto.DataType.FLOAT_VALUE)
                            .addDims(a.getFloatsCount()).addAllFloatData(a.getFloatsList()).build();
                default:
                    break;
            }
        }
        return null;
    }
}
