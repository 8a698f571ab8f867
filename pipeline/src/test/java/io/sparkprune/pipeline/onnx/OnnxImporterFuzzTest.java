package io.sparkprune.pipeline.onnx;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import com.google.protobuf.ByteString;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.AttributeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.GraphProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.NodeProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.io.ByteArrayInputStream;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Fuzzes {@link OnnxImporter} (and {@link OnnxExporter} with the imported tensors) with corrupted
 * ONNX models built by {@link TinyBertOnnx} in several layouts: raw bytes flipped or truncated, and
 * structural edits that keep the protobuf valid (initializer dims, data_type, raw_data length,
 * typed-field counts, external-data markers; node op types, inputs and attributes; removed nodes and
 * initializers). Only {@link InvalidInputException}s may escape, and the thread allocates at most
 * 64 bytes per input byte plus 32 MiB. Fixed seed (override {@code -Dsparkprune.fuzz.seed}),
 * {@code -Dsparkprune.fuzz.cases} cases (default 400).
 */
class OnnxImporterFuzzTest {

    enum Kind {
        FLIP, TRUNCATE, DIMS, DATA_TYPE, RAW_DATA, EXTERNAL, NODE, ATTRIBUTE, REMOVE
    }

    private static final long[] NUMBERS = {0, 1, 2, 3, 4, 7, 8, 16, -1, -2, Integer.MAX_VALUE, 1L << 31, 1L << 32,
        3037000500L, 1L << 40, 1L << 62, Long.MAX_VALUE, Long.MIN_VALUE};

    private static final String[] OPS = {"MatMul", "Gemm", "Add", "Reshape", "Transpose", "Constant", "Concat", "Erf", "Relu",
        "CumSum", "LayerNormalization", "ReduceMean", "Identity", "Gather", ""};

    @Test
    void corruptOnnxModelsOnlyThrowTypedExceptions() {
        long seed = Long.getLong("sparkprune.fuzz.seed", 20240611L);
        int cases = Integer.getInteger("sparkprune.fuzz.cases", 400);
        Random r = new Random(seed);
        List<ModelProto> bases = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            TinyBertOnnx b = new TinyBertOnnx();
            b.typedFloats = i % 2 == 1;
            b.prefix = i % 3 == 0 ? "bert." : "";
            b.pooler = i >= 3;
            b.layerNormOp = i % 3 == 2;
            b.reshape = TinyBertOnnx.ReshapeStyle.values()[i % TinyBertOnnx.ReshapeStyle.values().length];
            bases.add(b.build());
        }
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Map<Kind, int[]> tally = new EnumMap<>(Kind.class);
        for (int c = 0; c < cases; c++) {
            ModelProto base = bases.get(r.nextInt(bases.size()));
            Kind kind = Kind.values()[r.nextInt(Kind.values().length)];
            StringBuilder desc = new StringBuilder(kind.name());
            byte[] bytes = mutate(base, kind, r, desc);
            long before = mx.getCurrentThreadAllocatedBytes();
            boolean accepted = false;
            try {
                ModelProto m = OnnxImporter.parseModel(new ByteArrayInputStream(bytes), "fuzz.onnx");
                ImportedModel im = OnnxImporter.fromModelProto(m, "fuzz.onnx");
                OnnxExporter.export(m, "fuzz.onnx", DenseTensors.of(im.tensors(), "imported"));
                accepted = true;
            } catch (InvalidInputException e) {
                assertThat(e.getMessage()).contains("fuzz.onnx");
            } catch (Throwable t) {
                fail("onnx fuzz seed " + seed + " case " + c + " (" + desc + "): unexpected " + t, t);
            }
            long allocated = mx.getCurrentThreadAllocatedBytes() - before;
            if (allocated > 64L * bytes.length + (32L << 20)) {
                fail("onnx fuzz seed " + seed + " case " + c + " (" + desc + "): allocated " + allocated + " bytes for a "
                        + bytes.length + "-byte model");
            }
            tally.computeIfAbsent(kind, k -> new int[2])[accepted ? 0 : 1]++;
        }
        StringBuilder sb = new StringBuilder("onnx fuzz (seed " + seed + ", " + cases + " cases), accepted/rejected:");
        tally.forEach((k, v) -> sb.append(' ').append(k).append(' ').append(v[0]).append('/').append(v[1]));
        System.out.println(sb);
        assertThat(tally.values().stream().mapToInt(v -> v[1]).sum()).isGreaterThan(cases / 3);
    }

    private static long number(Random r) {
        return NUMBERS[r.nextInt(NUMBERS.length)];
    }

    private static byte[] mutate(ModelProto m, Kind kind, Random r, StringBuilder desc) {
        byte[] b = m.toByteArray();
        GraphProto.Builder g = m.getGraph().toBuilder();
        int ni = r.nextInt(g.getInitializerCount());
        TensorProto.Builder t = g.getInitializer(ni).toBuilder();
        int nn = r.nextInt(g.getNodeCount());
        NodeProto.Builder n = g.getNode(nn).toBuilder();
        switch (kind) {
            case FLIP -> {
                int k = 1 + r.nextInt(4);
                for (int i = 0; i < k; i++) {
                    int at = r.nextInt(b.length);
                    b[at] = (byte) r.nextInt(256);
                    desc.append(" byte ").append(at);
                }
                return b;
            }
            case TRUNCATE -> {
                int len = r.nextInt(b.length);
                desc.append(" to ").append(len);
                return Arrays.copyOf(b, len);
            }
            case DIMS -> {
                if (t.getDimsCount() == 0 || r.nextInt(4) == 0) {
                    t.addDims(number(r));
                } else {
                    t.setDims(r.nextInt(t.getDimsCount()), number(r));
                }
                desc.append(" '").append(t.getName()).append("' dims ").append(t.getDimsList());
                g.setInitializer(ni, t);
            }
            case DATA_TYPE -> {
                t.setDataType(r.nextInt(25) - 2);
                desc.append(" '").append(t.getName()).append("' data_type ").append(t.getDataType());
                g.setInitializer(ni, t);
            }
            case RAW_DATA -> {
                if (t.hasRawData()) {
                    ByteString raw = t.getRawData();
                    int len = r.nextInt(raw.size() + 9);
                    t.setRawData(len <= raw.size() ? raw.substring(0, len) : raw.concat(ByteString.copyFrom(new byte[len - raw.size()])));
                } else if (t.getFloatDataCount() > 0) {
                    t.addFloatData(1f);
                } else {
                    t.addInt64Data(number(r));
                }
                desc.append(" '").append(t.getName()).append("'");
                g.setInitializer(ni, t);
            }
            case EXTERNAL -> {
                t.setDataLocation(TensorProto.DataLocation.EXTERNAL);
                desc.append(" '").append(t.getName()).append("'");
                g.setInitializer(ni, t);
            }
            case NODE -> {
                switch (r.nextInt(3)) {
                    case 0 -> n.setOpType(OPS[r.nextInt(OPS.length)]);
                    case 1 -> {
                        if (n.getInputCount() > 0) {
                            n.setInput(r.nextInt(n.getInputCount()), g.getInitializer(r.nextInt(g.getInitializerCount())).getName());
                        }
                    }
                    default -> n.clearInput();
                }
                desc.append(" node ").append(n.getName()).append(' ').append(n.getOpType()).append(n.getInputList());
                g.setNode(nn, n);
            }
            case ATTRIBUTE -> {
                String name = new String[] {"transB", "perm", "epsilon", "value", "approximate", "axis"}[r.nextInt(6)];
                AttributeProto.Builder a = AttributeProto.newBuilder().setName(name);
                switch (r.nextInt(4)) {
                    case 0 -> a.setI(number(r)).setType(AttributeProto.AttributeType.INT);
                    case 1 -> a.addInts(number(r)).addInts(number(r)).setType(AttributeProto.AttributeType.INTS);
                    case 2 -> a.setF(Float.intBitsToFloat(r.nextInt())).setType(AttributeProto.AttributeType.FLOAT);
                    default -> a.setT(g.getInitializer(r.nextInt(g.getInitializerCount()))).setType(AttributeProto.AttributeType.TENSOR);
                }
                n.addAttribute(0, a);
                desc.append(" node ").append(n.getName()).append(" += ").append(name);
                g.setNode(nn, n);
            }
            case REMOVE -> {
                if (r.nextBoolean()) {
                    desc.append(" initializer ").append(g.getInitializer(ni).getName());
                    g.removeInitializer(ni);
                } else {
                    desc.append(" node ").append(g.getNode(nn).getName());
                    g.removeNode(nn);
                }
            }
            default -> throw new IllegalStateException();
        }
        return m.toBuilder().setGraph(g).build().toByteArray();
    }
}
