package io.sparkprune.jobs.cli;

import io.sparkprune.pipeline.hf.CheckpointInspector;
import io.sparkprune.pipeline.model.BertConfig;
import io.sparkprune.pipeline.model.LlamaConfig;
import io.sparkprune.pipeline.model.ModelConfig;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;

/** Prints a {@link CheckpointInspector.Summary} as text for {@code inspect} and {@code quickstart}. */
final class SummaryPrinter {
    private SummaryPrinter() {
    }

    static void print(CheckpointInspector.Summary s, boolean listTensors, PrintWriter out) {
        out.println("checkpoint: " + s.source());
        if (s.config().isPresent()) {
            ModelConfig c = s.config().get();
            out.printf(Locale.ROOT, "family: %s (model_type %s), %d layers, hidden %d, %d heads, intermediate %d, vocab %d%n",
                    c.family(), c.modelType(), c.numHiddenLayers(), c.hiddenSize(), c.numAttentionHeads(),
                    c.intermediateSize(), c.vocabSize());
            if (c instanceof LlamaConfig l) {
                out.printf(Locale.ROOT, "  kv heads %d, head_dim %d, rope %s theta %.1f, tied embeddings %s%n",
                        l.numKeyValueHeads(), l.headDim(), l.rope().ropeType(), l.rope().theta(), l.tieWordEmbeddings());
            } else if (c instanceof BertConfig b) {
                out.printf(Locale.ROOT, "  max positions %d, type vocab %d, layer_norm_eps %g%n",
                        b.maxPositionEmbeddings(), b.typeVocabSize(), b.layerNormEps());
            }
        } else {
            out.println("family: unknown (no config.json beside the weights)");
        }
        out.printf(Locale.ROOT, "tensors: %d, parameters: %,d, bytes: %,d, sparsity of 2-D weights: %.2f%%%n",
                s.tensors().size(), s.parameters(), s.bytes(), 100 * s.matrixSparsity());
        if (listTensors) {
            out.printf(Locale.ROOT, "%-60s %-5s %-16s %14s %9s %s%n", "tensor", "dtype", "shape", "bytes", "sparsity", "pattern");
            for (CheckpointInspector.TensorSummary t : s.tensors()) {
                out.printf(Locale.ROOT, "%-60s %-5s %-16s %,14d %8.2f%% %s%n", t.name(), t.dtype().safetensorsName(),
                        Arrays.toString(t.shape()).replace(" ", ""), t.bytes(), 100 * t.sparsity(), t.nmPattern().orElse(""));
            }
        }
        out.flush();
    }
}
