package io.sparkprune.pipeline.onnx;

import static org.assertj.core.api.Assertions.assertThat;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.sparkprune.calibration.baseline.MagnitudePruner;
import io.sparkprune.calibration.baseline.MaskedWeights;
import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.kernels.cpu.CpuBackend;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.forward.HiddenStates;
import io.sparkprune.pipeline.forward.Pooling;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.TransformerModel;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.ModelProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ONNX export of the pruned default model (all-MiniLM-L6-v2): the 36 encoder Linear weights are
 * pruned 2:4 by magnitude ({@link MagnitudePruner}), written back into the original graph with
 * {@link OnnxExporter}, and the file is run by onnxruntime. The reference is our own BERT forward
 * pass on the same pruned parameters: sentence-transformers embeddings (mean pooling over real
 * tokens, L2-normalised) of Europarl sentences in padded batches must agree within 1e-4.
 */
class OnnxExporterMiniLmTest {
    private static final int SENTENCES = 48;
    private static final int BATCH = 16;
    private static final int MAX_LENGTH = 128;

    @TempDir
    static Path dir;

    private static byte[] original;
    private static ModelProto template;
    private static ImportedModel imported;
    private static LinkedHashMap<String, HostTensor> pruned;
    private static List<String> prunedNames;
    private static Path exported;
    private static CpuBackend backend;

    @BeforeAll
    static void setUp() throws Exception {
        try (InputStream in = DefaultAssets.modelOnnx().openStream()) {
            original = in.readAllBytes();
        }
        template = OnnxImporter.parseModel(new ByteArrayInputStream(original), DefaultAssets.MODEL_ONNX_RESOURCE);
        imported = OnnxImporter.fromModelProto(template, DefaultAssets.MODEL_ONNX_RESOURCE);
        pruned = new LinkedHashMap<>(imported.tensors());
        prunedNames = new ArrayList<>();
        for (Map.Entry<String, HostTensor> e : imported.tensors().entrySet()) {
            String name = e.getKey();
            if (name.startsWith("encoder.layer.") && name.endsWith(".weight") && e.getValue().shape().length == 2) {
                long[] s = e.getValue().shape();
                MaskedWeights m = MagnitudePruner.prune(name, e.getValue().toFloatArray(), (int) s[0], (int) s[1],
                        new SparsityPattern.NofM(2, 4));
                pruned.put(name, HostTensor.fromFloats(DType.F32, s, m.weights()));
                prunedNames.add(name);
            }
        }
        OnnxExporter.Result r = OnnxExporter.export(template, DefaultAssets.MODEL_ONNX_RESOURCE,
                DenseTensors.of(pruned, "pruned MiniLM"));
        assertThat(r.unused()).isEmpty();
        assertThat(r.replaced()).containsExactlyInAnyOrderElementsOf(imported.tensors().keySet());
        exported = dir.resolve("model.onnx");
        OnnxExporter.write(r.model(), exported);
        backend = CpuBackend.create();
    }

    @AfterAll
    static void tearDown() {
        if (backend != null) {
            backend.close();
        }
    }

    @Test
    void exportingTheImportedTensorsReproducesTheFileByteForByte() {
        OnnxExporter.Result r = OnnxExporter.export(template, "t", DenseTensors.of(imported.tensors(), "imported"));
        assertThat(r.model().toByteArray()).isEqualTo(original);
    }

    @Test
    void exportedInitializersAreTheTensorsPassedAndPrunedOnesAre2of4() throws Exception {
        assertThat(prunedNames).hasSize(36);
        ModelProto out = OnnxImporter.parseModel(exported);
        Map<String, OnnxParameter> params = OnnxImporter.parameterMap(out, exported.toString());
        assertThat(params.keySet()).containsExactlyInAnyOrderElementsOf(pruned.keySet());
        // graph, opset, metadata and every initializer not a parameter are unchanged
        assertThat(out.getOpsetImportList()).isEqualTo(template.getOpsetImportList());
        assertThat(out.getGraph().getNodeList()).isEqualTo(template.getGraph().getNodeList());
        assertThat(out.getGraph().getInitializerCount()).isEqualTo(template.getGraph().getInitializerCount());
        int checked = 0;
        for (int i = 0; i < out.getGraph().getInitializerCount(); i++) {
            TensorProto o = out.getGraph().getInitializer(i);
            TensorProto t = template.getGraph().getInitializer(i);
            assertThat(o.getName()).isEqualTo(t.getName());
            assertThat(o.getDimsList()).isEqualTo(t.getDimsList());
            assertThat(o.getDataType()).isEqualTo(t.getDataType());
            OnnxParameter p = params.values().stream().filter(q -> q.initializer().equals(o.getName())).findFirst().orElse(null);
            if (p == null) {
                assertThat(o).isEqualTo(t);
                continue;
            }
            HostTensor passed = pruned.get(p.hfName());
            byte[] raw = o.getRawData().toByteArray();
            long[] dims = o.getDimsList().stream().mapToLong(Long::longValue).toArray();
            ByteBuffer le = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN);
            // element (r, c) of the HF tensor, read independently of OnnxTensors.transpose2d
            long[] s = passed.shape();
            for (long k = 0; k < passed.numel(); k++) {
                long r = s.length == 2 ? k / s[1] : k;
                long c = s.length == 2 ? k % s[1] : 0;
                long at = p.transposed() ? c * dims[1] + r : k;
                assertThat(le.getInt((int) (4 * at))).isEqualTo(passed.data().getInt((int) (4 * k)));
            }
            if (prunedNames.contains(p.hfName())) {
                // stored (in x out): every 4 consecutive inputs of one output column keep at most 2 non-zeros
                assertThat(p.transposed()).isTrue();
                int in = (int) dims[0];
                int outs = (int) dims[1];
                for (int col = 0; col < outs; col++) {
                    for (int g = 0; g < in; g += 4) {
                        int nz = 0;
                        for (int j = g; j < g + 4; j++) {
                            nz += le.getFloat(4 * (j * outs + col)) != 0f ? 1 : 0;
                        }
                        assertThat(nz).isLessThanOrEqualTo(2);
                    }
                }
            }
            checked++;
        }
        assertThat(checked).isEqualTo(pruned.size());
    }

    @Test
    void reimportingTheExportGivesTheTensorsBack() {
        ImportedModel again = OnnxImporter.importModel(exported);
        assertThat(again.tensors().keySet()).containsExactlyElementsOf(pruned.keySet());
        for (String n : pruned.keySet()) {
            assertThat(again.tensors().get(n)).as(n).isEqualTo(pruned.get(n));
        }
        assertThat(again.config()).isEqualTo(imported.config());
        // import(export(import(x))) == import(x) for the unpruned model
        ModelProto same = OnnxExporter.export(template, "t", DenseTensors.of(imported.tensors(), "imported")).model();
        ImportedModel twice = OnnxImporter.fromModelProto(same, "twice");
        assertThat(twice.tensors()).isEqualTo(imported.tensors());
        assertThat(twice.config()).isEqualTo(imported.config());
    }

    @Test
    void onnxRuntimeOnTheExportMatchesOurForwardOnThePrunedWeights() throws Exception {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions opts = new OrtSession.SessionOptions();
        opts.setIntraOpNumThreads(Math.max(1, Runtime.getRuntime().availableProcessors()));
        opts.addConfigEntry("session.intra_op.allow_spinning", "0");
        TransformerModel model = TransformerModel.fromOnnx(new ImportedModel(imported.config(), pruned, "pruned"), backend);
        List<String> sentences = new ArrayList<>();
        for (String doc : DefaultAssets.englishEuroparl().readAll(200)) {
            for (String s : doc.split("(?<=[.!?])\\s+")) {
                if (s.split(" ").length >= 3 && sentences.size() < SENTENCES) {
                    sentences.add(s);
                }
            }
        }
        assertThat(sentences).hasSize(SENTENCES);
        double worstPooled = 0;
        double worstHidden = 0;
        double prunedVsDenseOrt = 0;
        int padded = 0;
        try (HfTokenizer tokenizer = DefaultAssets.openTokenizer();
             OrtSession session = env.createSession(exported.toString(), opts);
             OrtSession dense = env.createSession(original, opts)) {
            int h = model.config().hiddenSize();
            for (int b0 = 0; b0 < SENTENCES; b0 += BATCH) {
                List<String> texts = sentences.subList(b0, Math.min(SENTENCES, b0 + BATCH));
                EncodedBatch probe = tokenizer.encodeBatch(texts, MAX_LENGTH);
                int longest = 0;
                for (int i = 0; i < probe.rows(); i++) {
                    longest = Math.max(longest, probe.lengths()[i]);
                }
                EncodedBatch enc = tokenizer.encodeBatch(texts, longest);
                float[][][] ort = run(env, session, enc);
                float[][][] ortDense = run(env, dense, enc);
                TokenBatch packed = TokenBatch.fromEncoded(enc);
                HiddenStates ours = model.encode(packed);
                float[] pooled = Pooling.MEAN.apply(ours, true);
                for (int r = 0; r < enc.rows(); r++) {
                    int len = enc.lengths()[r];
                    padded += enc.seqLength() - len;
                    double[] mean = normalizedMean(ort[r], len, h);
                    double[] meanDense = normalizedMean(ortDense[r], len, h);
                    for (int t = 0; t < len; t++) {
                        int row = packed.layout().start(r) + t;
                        for (int c = 0; c < h; c++) {
                            worstHidden = Math.max(worstHidden, Math.abs(ours.data()[row * h + c] - ort[r][t][c]));
                        }
                    }
                    for (int c = 0; c < h; c++) {
                        worstPooled = Math.max(worstPooled, Math.abs(pooled[r * h + c] - mean[c]));
                        prunedVsDenseOrt = Math.max(prunedVsDenseOrt, Math.abs(mean[c] - meanDense[c]));
                    }
                }
            }
        }
        System.out.printf("pruned 2:4 MiniLM, exported ONNX in onnxruntime vs our forward: %d sentences, %d padding"
                + " positions; max |mean-pooled normalised diff| = %.3g, max |last_hidden_state diff| = %.3g;"
                + " (pruned vs dense in onnxruntime: %.3g)%n", SENTENCES, padded, worstPooled, worstHidden, prunedVsDenseOrt);
        assertThat(padded).as("the batches must contain padding").isGreaterThan(0);
        assertThat(worstPooled).isLessThanOrEqualTo(1e-4);
        // the comparison discriminates: the pruned model's embeddings are far from the dense model's
        assertThat(prunedVsDenseOrt).isGreaterThan(1e-2);
    }

    private static float[][][] run(OrtEnvironment env, OrtSession s, EncodedBatch enc) throws Exception {
        long[] shape = {enc.rows(), enc.seqLength()};
        try (OnnxTensor ids = OnnxTensor.createTensor(env, LongBuffer.wrap(toLongs(enc.ids())), shape);
             OnnxTensor mask = OnnxTensor.createTensor(env, LongBuffer.wrap(toLongs(enc.attentionMask())), shape);
             OnnxTensor types = OnnxTensor.createTensor(env, LongBuffer.wrap(toLongs(enc.tokenTypeIds())), shape);
             OrtSession.Result res = s.run(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types))) {
            return (float[][][]) res.get("last_hidden_state").orElseThrow().getValue();
        }
    }

    /** sentence-transformers mean pooling over the real tokens, then L2 normalisation. */
    private static double[] normalizedMean(float[][] tokens, int len, int h) {
        double[] mean = new double[h];
        for (int t = 0; t < len; t++) {
            for (int c = 0; c < h; c++) {
                mean[c] += tokens[t][c];
            }
        }
        double norm = 0;
        for (int c = 0; c < h; c++) {
            mean[c] /= len;
            norm += mean[c] * mean[c];
        }
        norm = Math.sqrt(norm);
        for (int c = 0; c < h; c++) {
            mean[c] /= norm;
        }
        return mean;
    }

    private static long[] toLongs(int[] a) {
        long[] l = new long[a.length];
        for (int i = 0; i < a.length; i++) {
            l[i] = a[i];
        }
        return l;
    }
}
