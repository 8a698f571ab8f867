package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.kernels.ForwardPrecision;
import io.sparkprune.pipeline.data.DocumentSource;
import io.sparkprune.pipeline.data.DocumentSources;
import io.sparkprune.pipeline.defaults.DefaultAssets;
import io.sparkprune.pipeline.forward.Perplexity;
import io.sparkprune.pipeline.forward.Pooling;
import io.sparkprune.pipeline.forward.TokenBatch;
import io.sparkprune.pipeline.forward.TransformerModel;
import io.sparkprune.pipeline.model.ModelConfig;
import io.sparkprune.pipeline.model.ModelFamily;
import io.sparkprune.pipeline.recipe.CalibrationSpec;
import io.sparkprune.pipeline.recipe.EvaluationSpec;
import io.sparkprune.pipeline.tokenizer.EncodedBatch;
import io.sparkprune.pipeline.tokenizer.HfTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import scala.Tuple3;

/**
 * The model-level quality check, dense against pruned, on data the calibration never saw (the
 * held-out split of the calibration source unless the recipe names evaluation data), run on the
 * executors; only per-window losses and sentence embeddings come back to the driver.
 *
 * <ul>
 *   <li>Decoders: perplexity over non-overlapping windows of L tokens of the held-out text joined
 *       with blank lines, at most {@code evaluation.samples} windows, the same windows for both
 *       models ({@link Perplexity}: the SparseGPT paper's rule).</li>
 *   <li>Encoders: sentence embeddings (mean pooling over real tokens, L2-normalised, as
 *       all-MiniLM-L6-v2 is used) of {@code evaluation.samples} held-out sentences; the report gives
 *       the mean and minimum cosine similarity between each sentence's dense and pruned embedding, and
 *       the top-10 neighbour agreement: for each sentence, the fraction of its 10 nearest other
 *       sentences (by cosine) under the dense model that are also among its 10 nearest under the
 *       pruned model, averaged.</li>
 * </ul>
 */
final class QualityEvaluator {
    static final int NEIGHBOURS = 10;
    private static final int SENTENCES_PER_BATCH = 32;

    private QualityEvaluator() {
    }

    static ObjectNode evaluate(JavaSparkContext jsc, JobContext ctx, ModelConfig config, byte[] tokenizerJson,
                               String prunedUri, Configuration hconf) {
        return evaluate(jsc, ctx, config, tokenizerJson, checkpointModel(ctx, prunedUri), hconf, List.of());
    }

    /**
     * The pruned model of a checkpoint on the file system (the validate command's compressed checkpoint).
     *
     * @param uri the checkpoint directory
     * @return a reference that opens (or finds cached) the model on an executor
     */
    static ModelRef checkpointModel(JobContext ctx, String uri) {
        return () -> model(ctx, uri);
    }

    /**
     * The pruned model as the prune job committed it ({@link JobContext#committedSource}): the dense
     * checkpoint with the committed shards laid over it, cached per executor under the staging directory.
     *
     * @param shards every committed tensor's shards
     * @param stagingDir the run's staging directory (one directory per layer)
     * @return a reference that opens (or finds cached) the model on an executor
     */
    static ModelRef committedModel(JobContext ctx, Map<String, List<io.sparkprune.jobs.commit.ShardRecord>> shards,
                                   String stagingDir) {
        return () -> ExecutorState.model("committed|" + stagingDir, ctx.adapter().config(),
                () -> ctx.committedSource(shards, stagingDir),
                ctx.backendChoice(), ctx.threads());
    }

    /**
     * The quality check, and the same metric for each baseline (magnitude, Wanda) at the run's
     * pattern and targets into {@code quality.baselines} (docs/report.md): one more Spark job per
     * baseline over the same windows or sentences, whose executors prune the dense weights as they
     * load them ({@link BaselineWeights}); the dense scores of the first pass are reused.
     *
     * @param pruned the pruned model ({@link #checkpointModel} or {@link #committedModel})
     * @param baselines the baselines to score, in report order (empty for none)
     * @return the report's {@code quality} object
     */
    static ObjectNode evaluate(JavaSparkContext jsc, JobContext ctx, ModelConfig config, byte[] tokenizerJson,
                               ModelRef pruned, Configuration hconf, List<BaselineWeights> baselines) {
        return evaluate(jsc, ctx, config, prepare(ctx, config, tokenizerJson, hconf), pruned, baselines);
    }

    /**
     * The evaluation data, read and (for a decoder) tokenized on the driver: what {@link #evaluate} scores.
     * The prune job prepares it while the layers are pruned, so that the quality check that follows the last
     * layer starts with its Spark jobs.
     *
     * @param description where the data came from (the report's {@code quality.data})
     * @param seqLen tokens per window (decoder) or most tokens per sentence (encoder)
     * @param sentences the encoder's sentences (null for a decoder)
     * @param tokens the decoder's documents tokenized and joined (null for an encoder)
     * @param tokenizerJson the model's tokenizer.json (an encoder's sentences are encoded with it)
     */
    record Prepared(String description, int seqLen, List<String> sentences, int[] tokens, byte[] tokenizerJson) {
    }

    /**
     * Reads the evaluation data (the calibration corpus's held-out part, or {@code evaluation.source}) and,
     * for a decoder, tokenizes it: the driver's share of the quality check.
     *
     * @param tokenizerJson the model's tokenizer.json
     * @return the prepared data
     * @throws io.sparkprune.kernels.InvalidInputException when the data cannot be read
     */
    static Prepared prepare(JobContext ctx, ModelConfig config, byte[] tokenizerJson, Configuration hconf) {
        EvaluationSpec ev = ctx.recipe().evaluation();
        CalibrationSpec cal = ctx.recipe().calibration();
        DocumentSource docs;
        if (ev.usesHeldOut()) {
            DocumentSource corpus = cal.isDefaultSource() ? DefaultAssets.englishEuroparl()
                    : DocumentSources.open(cal.source(), cal.options(), hconf);
            docs = cal.split().heldOutPart(corpus);
        } else {
            docs = DocumentSources.open(ev.source(), ev.options(), hconf);
        }
        int seqLen = ev.resolveSeqLen(config, cal.resolveSeqLen(config));
        if (config.family() == ModelFamily.BERT) {
            return new Prepared(docs.description(), seqLen, docs.readAll(ev.samples()), null, tokenizerJson);
        }
        try (HfTokenizer tok = HfTokenizer.fromBytes(tokenizerJson, "tokenizer.json")) {
            return new Prepared(docs.description(), seqLen, null,
                    tok.encode(String.join("\n\n", docs.readAll(Integer.MAX_VALUE)), true), tokenizerJson);
        }
    }

    /**
     * {@link #evaluate(JavaSparkContext, JobContext, ModelConfig, byte[], ModelRef, Configuration, List)} on
     * data already prepared ({@link #prepare}).
     *
     * @param data the prepared evaluation data
     * @return the report's {@code quality} object
     */
    static ObjectNode evaluate(JavaSparkContext jsc, JobContext ctx, ModelConfig config, Prepared data,
                               ModelRef pruned, List<BaselineWeights> baselines) {
        EvaluationSpec ev = ctx.recipe().evaluation();
        ObjectNode q = JsonNodeFactory.instance.objectNode();
        q.put("data", data.description());
        if (config.family() == ModelFamily.BERT) {
            try (HfTokenizer tok = HfTokenizer.fromBytes(data.tokenizerJson(), "tokenizer.json")) {
                encoder(jsc, ctx, config, tok, data.sentences(), data.seqLen(), pruned, q, baselines);
            }
        } else {
            decoder(jsc, ctx, data.tokens(), data.seqLen(), ev.samples(), pruned, q, baselines);
        }
        return q;
    }

    private static void decoder(JavaSparkContext jsc, JobContext ctx, int[] tokens, int seqLen, int maxWindows,
                                ModelRef prunedModel, ObjectNode q, List<BaselineWeights> baselines) {
        ForwardPrecision precision = ctx.recipe().evaluation().forwardPrecision();
        int windows = Math.min(maxWindows, tokens.length / seqLen);
        q.put("metric", "perplexity");
        q.put("forward_precision", precision.id());
        q.put("seq_len", seqLen);
        q.put("windows", windows);
        if (windows == 0) {
            q.put("error", "the evaluation text has " + tokens.length + " tokens, fewer than one window of " + seqLen);
            return;
        }
        List<int[]> ws = new ArrayList<>();
        for (int w = 0; w < windows; w++) {
            ws.add(Arrays.copyOfRange(tokens, w * seqLen, (w + 1) * seqLen));
        }
        String denseUri = ctx.modelUri();
        List<Tuple3<Integer, Double, Double>> losses = new ArrayList<>(jsc.parallelize(indexed(ws), Math.min(16, windows))
                .mapPartitions(it -> {
                    List<scala.Tuple2<Integer, int[]>> part = new ArrayList<>();
                    it.forEachRemaining(part::add);
                    if (part.isEmpty()) {
                        return java.util.Collections.<Tuple3<Integer, Double, Double>>emptyIterator();
                    }
                    int[] concat = new int[part.size() * seqLen];
                    for (int i = 0; i < part.size(); i++) {
                        System.arraycopy(part.get(i)._2(), 0, concat, i * seqLen, seqLen);
                    }
                    double[] dense = Perplexity.evaluate(model(ctx, denseUri), concat, seqLen, 1, precision).windowLosses();
                    double[] pruned = Perplexity.evaluate(prunedModel.open(), concat, seqLen, 1, precision).windowLosses();
                    List<Tuple3<Integer, Double, Double>> res = new ArrayList<>();
                    for (int i = 0; i < part.size(); i++) {
                        res.add(new Tuple3<>(part.get(i)._1(), dense[i], pruned[i]));
                    }
                    return res.iterator();
                }).collect());
        losses.sort(Comparator.comparing(Tuple3::_1));
        double dense = 0;
        double pruned = 0;
        for (Tuple3<Integer, Double, Double> t : losses) {
            dense += t._2();
            pruned += t._3();
        }
        double pplDense = Math.exp(dense / windows);
        double pplPruned = Math.exp(pruned / windows);
        q.put("perplexity_dense", pplDense);
        q.put("perplexity_pruned", pplPruned);
        q.put("perplexity_increase", pplPruned / pplDense - 1);
        if (baselines.isEmpty()) {
            return;
        }
        com.fasterxml.jackson.databind.node.ArrayNode arr = q.putArray("baselines");
        for (BaselineWeights b : baselines) {
            ModelRef ref = baselineModel(ctx, b);
            List<scala.Tuple2<Integer, Double>> bl = new ArrayList<>(jsc.parallelize(indexed(ws), Math.min(16, windows))
                    .mapPartitions(it -> {
                        List<scala.Tuple2<Integer, int[]>> part = new ArrayList<>();
                        it.forEachRemaining(part::add);
                        if (part.isEmpty()) {
                            return java.util.Collections.<scala.Tuple2<Integer, Double>>emptyIterator();
                        }
                        int[] concat = new int[part.size() * seqLen];
                        for (int i = 0; i < part.size(); i++) {
                            System.arraycopy(part.get(i)._2(), 0, concat, i * seqLen, seqLen);
                        }
                        double[] l = Perplexity.evaluate(ref.open(), concat, seqLen, 1, precision).windowLosses();
                        List<scala.Tuple2<Integer, Double>> res = new ArrayList<>();
                        for (int i = 0; i < part.size(); i++) {
                            res.add(new scala.Tuple2<>(part.get(i)._1(), l[i]));
                        }
                        return res.iterator();
                    }).collect());
            bl.sort(Comparator.comparing(scala.Tuple2::_1));
            double sum = 0;
            for (scala.Tuple2<Integer, Double> t : bl) {
                sum += t._2();
            }
            double ppl = Math.exp(sum / windows);
            ObjectNode o = baselineEntry(arr, b);
            o.put("perplexity", ppl);
            o.put("perplexity_increase", ppl / pplDense - 1);
        }
    }

    /** Opens (or finds cached) a model on an executor. */
    interface ModelRef extends java.io.Serializable {
        TransformerModel open();
    }

    private static ModelRef baselineModel(JobContext ctx, BaselineWeights b) {
        String key = "baseline|" + b.method().id() + "|" + ctx.modelUri();
        return () -> ExecutorState.model(key, ctx.adapter().config(), () -> b.over(ctx.denseSource()),
                ctx.backendChoice(), ctx.threads());
    }

    private static ObjectNode baselineEntry(com.fasterxml.jackson.databind.node.ArrayNode arr, BaselineWeights b) {
        ObjectNode o = arr.addObject();
        o.put("method", b.method().id());
        o.put("pattern", b.pattern());
        o.put("tensors", b.targets().size());
        if (b.method() == io.sparkprune.pipeline.recipe.PruneMethod.WANDA) {
            o.put("input_norms", "sqrt of the Hessian diagonal: the job's calibration inputs of each layer");
        }
        return o;
    }

    private static void encoder(JavaSparkContext jsc, JobContext ctx, ModelConfig config, HfTokenizer tok, List<String> sentences,
                                int seqLen, ModelRef prunedModel, ObjectNode q, List<BaselineWeights> baselines) {
        ForwardPrecision precision = ctx.recipe().evaluation().forwardPrecision();
        q.put("metric", "embedding_cosine");
        q.put("forward_precision", precision.id());
        q.put("pooling", "mean, L2-normalised");
        q.put("seq_len", seqLen);
        q.put("sentences", sentences.size());
        if (sentences.size() <= NEIGHBOURS) {
            q.put("error", "need more than " + NEIGHBOURS + " evaluation sentences, got " + sentences.size());
            return;
        }
        EncodedBatch enc = tok.encodeBatch(sentences, seqLen);
        List<int[][]> batches = new ArrayList<>();
        for (int r0 = 0; r0 < enc.rows(); r0 += SENTENCES_PER_BATCH) {
            int n = Math.min(SENTENCES_PER_BATCH, enc.rows() - r0);
            int[][] b = new int[n][];
            for (int i = 0; i < n; i++) {
                b[i] = Arrays.copyOf(enc.rowIds(r0 + i), enc.lengths()[r0 + i]);
            }
            batches.add(b);
        }
        String denseUri = ctx.modelUri();
        int hidden = config.hiddenSize();
        List<Tuple3<Integer, float[], float[]>> embs = new ArrayList<>(jsc.parallelize(indexed(batches),
                Math.min(16, batches.size())).map(t -> {
                    TokenBatch b = TokenBatch.of(t._2());
                    return new Tuple3<>(t._1(), model(ctx, denseUri).sentenceEmbeddings(b, Pooling.MEAN, true, precision),
                            prunedModel.open().sentenceEmbeddings(b, Pooling.MEAN, true, precision));
                }).collect());
        embs.sort(Comparator.comparing(Tuple3::_1));
        int n = sentences.size();
        float[] dense = new float[n * hidden];
        float[] pruned = new float[n * hidden];
        int row = 0;
        for (Tuple3<Integer, float[], float[]> t : embs) {
            System.arraycopy(t._2(), 0, dense, row * hidden, t._2().length);
            System.arraycopy(t._3(), 0, pruned, row * hidden, t._3().length);
            row += t._2().length / hidden;
        }
        double sum = 0;
        double min = Double.POSITIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            double c = dot(dense, i, pruned, i, hidden);
            sum += c;
            min = Math.min(min, c);
        }
        q.put("mean_cosine", sum / n);
        q.put("min_cosine", min);
        double agree = 0;
        for (int i = 0; i < n; i++) {
            agree += overlap(topK(dense, i, n, hidden), topK(pruned, i, n, hidden)) / (double) NEIGHBOURS;
        }
        q.put("top10_neighbour_agreement", agree / n);
        if (baselines.isEmpty()) {
            return;
        }
        com.fasterxml.jackson.databind.node.ArrayNode arr = q.putArray("baselines");
        for (BaselineWeights b : baselines) {
            ModelRef ref = baselineModel(ctx, b);
            List<scala.Tuple2<Integer, float[]>> be = new ArrayList<>(jsc.parallelize(indexed(batches),
                    Math.min(16, batches.size())).map(t -> new scala.Tuple2<>(t._1(),
                            ref.open().sentenceEmbeddings(TokenBatch.of(t._2()), Pooling.MEAN, true, precision))).collect());
            be.sort(Comparator.comparing(scala.Tuple2::_1));
            float[] base = new float[n * hidden];
            int r = 0;
            for (scala.Tuple2<Integer, float[]> t : be) {
                System.arraycopy(t._2(), 0, base, r * hidden, t._2().length);
                r += t._2().length / hidden;
            }
            double bs = 0;
            double bmin = Double.POSITIVE_INFINITY;
            double bagree = 0;
            for (int i = 0; i < n; i++) {
                double c = dot(dense, i, base, i, hidden);
                bs += c;
                bmin = Math.min(bmin, c);
                bagree += overlap(topK(dense, i, n, hidden), topK(base, i, n, hidden)) / (double) NEIGHBOURS;
            }
            ObjectNode o = baselineEntry(arr, b);
            o.put("mean_cosine", bs / n);
            o.put("min_cosine", bmin);
            o.put("top10_neighbour_agreement", bagree / n);
        }
    }

    private static TransformerModel model(JobContext ctx, String uri) {
        return ExecutorState.model(uri, ctx.hadoop(), ctx.adapter().config(), ctx.backendChoice(), ctx.threads());
    }

    private static <T> List<scala.Tuple2<Integer, T>> indexed(List<T> items) {
        List<scala.Tuple2<Integer, T>> res = new ArrayList<>();
        for (int i = 0; i < items.size(); i++) {
            res.add(new scala.Tuple2<>(i, items.get(i)));
        }
        return res;
    }

    static double dot(float[] a, int i, float[] b, int j, int d) {
        double s = 0;
        for (int k = 0; k < d; k++) {
            s += (double) a[i * d + k] * b[j * d + k];
        }
        return s;
    }

    /** Indices of the K most similar other rows to row i (cosine of normalised rows), ties to the lower index. */
    static int[] topK(float[] e, int i, int n, int d) {
        Integer[] idx = new Integer[n - 1];
        double[] sim = new double[n];
        int p = 0;
        for (int j = 0; j < n; j++) {
            if (j != i) {
                idx[p++] = j;
                sim[j] = dot(e, i, e, j, d);
            }
        }
        Arrays.sort(idx, (x, y) -> sim[x] != sim[y] ? Double.compare(sim[y], sim[x]) : Integer.compare(x, y));
        int[] res = new int[NEIGHBOURS];
        for (int k = 0; k < NEIGHBOURS; k++) {
            res[k] = idx[k];
        }
        return res;
    }

    static int overlap(int[] a, int[] b) {
        int c = 0;
        for (int x : a) {
            for (int y : b) {
                if (x == y) {
                    c++;
                    break;
                }
            }
        }
        return c;
    }
}
