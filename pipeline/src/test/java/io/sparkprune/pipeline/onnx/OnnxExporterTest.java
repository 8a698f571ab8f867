package io.sparkprune.pipeline.onnx;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.InvalidInputException;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link OnnxExporter} on small synthetic BERT graphs: layouts, prefixes, typed errors, atomic writes. */
class OnnxExporterTest {
    @TempDir
    Path tmp;

    private static LinkedHashMap<String, HostTensor> expected(TinyBertOnnx b) {
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        b.expected.forEach((n, v) -> m.put(n, HostTensor.fromFloats(DType.F32, b.expectedShapes.get(n), v)));
        return m;
    }

    @Test
    void writesTheGeneratorsOwnValuesBackInEveryLayout() {
        for (boolean typed : new boolean[] {false, true}) {
            TinyBertOnnx b = new TinyBertOnnx();
            b.typedFloats = typed;
            b.prefix = "bert.";
            b.pooler = true;
            ModelProto m = b.build();
            // replace every parameter by its negation, computed from the generator's HF-layout values
            LinkedHashMap<String, HostTensor> neg = new LinkedHashMap<>();
            b.expected.forEach((n, v) -> {
                float[] w = v.clone();
                for (int i = 0; i < w.length; i++) {
                    w[i] = -w[i];
                }
                neg.put("bert." + n, HostTensor.fromFloats(DType.F32, b.expectedShapes.get(n), w));
            });
            OnnxExporter.Result r = OnnxExporter.export(m, "tiny", DenseTensors.of(neg, "neg"));
            assertThat(r.unused()).isEmpty();
            ImportedModel back = OnnxImporter.fromModelProto(r.model(), "back");
            for (String n : b.expected.keySet()) {
                assertThat(back.tensors().get(n)).as(n).isEqualTo(neg.get("bert." + n));
            }
            for (TensorProto t : r.model().getGraph().getInitializerList()) {
                if (r.replaced().stream().anyMatch(n -> t.getName().endsWith(n)) || t.getName().startsWith("onnx::MatMul")) {
                    assertThat(t.getFloatDataCount()).isZero();
                }
            }
        }
    }

    @Test
    void unusedTensorsAreReportedNotWritten() {
        TinyBertOnnx b = new TinyBertOnnx();
        ModelProto m = b.build();
        LinkedHashMap<String, HostTensor> t = expected(b);
        t.put("classifier.weight", HostTensor.fromFloats(DType.F32, new long[] {2, 8}, new float[16]));
        OnnxExporter.Result r = OnnxExporter.export(m, "tiny", DenseTensors.of(t, "src"));
        assertThat(r.unused()).containsExactly("classifier.weight");
        assertThat(r.model().toByteArray()).isEqualTo(m.toByteArray());
    }

    @Test
    void missingTensorIsATypedErrorNamingIt() {
        TinyBertOnnx b = new TinyBertOnnx();
        ModelProto m = b.build();
        LinkedHashMap<String, HostTensor> t = expected(b);
        t.remove("encoder.layer.1.intermediate.dense.weight");
        assertThatThrownBy(() -> OnnxExporter.export(m, "tiny.onnx", DenseTensors.of(t, "ckpt")))
                .isInstanceOf(OnnxExportException.class)
                .hasMessageContaining("encoder.layer.1.intermediate.dense.weight (onnx::MatMul_")
                .hasMessageContaining("tiny.onnx").hasMessageContaining("Fix:");
    }

    @Test
    void shapeAndDtypeMismatchesAreTypedErrors() {
        TinyBertOnnx b = new TinyBertOnnx();
        ModelProto m = b.build();
        LinkedHashMap<String, HostTensor> t = expected(b);
        String w = "encoder.layer.0.output.dense.weight"; // HF (8 x 16), stored (16 x 8)
        t.put(w, HostTensor.fromFloats(DType.F32, new long[] {16, 8}, b.expected.get(w)));
        assertThatThrownBy(() -> OnnxExporter.export(m, "tiny.onnx", DenseTensors.of(t, "ckpt")))
                .isInstanceOf(OnnxExportException.class)
                .hasMessageContaining("'" + w + "'").hasMessageContaining("[16, 8]").hasMessageContaining("needs [8, 16]");
        LinkedHashMap<String, HostTensor> t2 = expected(b);
        t2.put(w, HostTensor.fromFloats(DType.BF16, new long[] {8, 16}, b.expected.get(w)));
        assertThatThrownBy(() -> OnnxExporter.export(m, "tiny.onnx", DenseTensors.of(t2, "ckpt")))
                .isInstanceOf(OnnxExportException.class)
                .hasMessageContaining("'" + w + "'").hasMessageContaining("BF16").hasMessageContaining("F32");
    }

    @Test
    void duplicateCarriersOfOneParameterAreRefused() {
        TinyBertOnnx b = new TinyBertOnnx();
        ModelProto m = b.build();
        LinkedHashMap<String, HostTensor> t = expected(b);
        t.put("bert.embeddings.LayerNorm.bias", t.get("embeddings.LayerNorm.bias"));
        assertThatThrownBy(() -> OnnxExporter.export(m, "tiny.onnx", DenseTensors.of(t, "ckpt")))
                .isInstanceOf(OnnxExportException.class).hasMessageContaining("embeddings.LayerNorm.bias");
    }

    @Test
    void writeIsAllOrNothingAndRefusesToOverwrite() throws Exception {
        ModelProto m = new TinyBertOnnx().build();
        Path f = tmp.resolve("model.onnx");
        OnnxExporter.write(m, f);
        assertThat(Files.readAllBytes(f)).isEqualTo(m.toByteArray());
        assertThatThrownBy(() -> OnnxExporter.write(m, f)).isInstanceOf(InvalidInputException.class)
                .hasMessageContaining("already exists");
        try (var s = Files.list(tmp)) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactly("model.onnx");
        }
        Path missingDir = tmp.resolve("nope/model.onnx");
        assertThatThrownBy(() -> OnnxExporter.write(m, missingDir)).isInstanceOf(java.io.UncheckedIOException.class);
        assertThat(Files.exists(tmp.resolve("nope"))).isFalse();
    }
}
