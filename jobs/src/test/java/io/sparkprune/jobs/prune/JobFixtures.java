package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparkprune.jobs.tools.RandomLlama;
import io.sparkprune.kernels.DType;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.spark.sql.SparkSession;

/**
 * Shared inputs of the prune job tests: a tiny generated Llama, an English calibration corpus, the
 * recipe and Spark settings, and helpers that read outputs back.
 */
final class JobFixtures {
    /** The report files; they carry timings and paths, so runs compare them by content, not bytes. */
    static final java.util.Set<String> REPORT_FILES = java.util.Set.of("report.json", "report.html", "metrics.parquet");

    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * hidden 64, 2 layers, 4 heads / 2 kv heads, intermediate 128, vocab 256, bf16; about 210 kB of
     * tensors in shards of at most 60 kB (4 files).
     */
    static final RandomLlama.Spec TINY = new RandomLlama.Spec(64, 2, 4, 2, 128, 256, DType.BF16, 1, 60_000, false, 2048);

    /** Calibration partitions of every test run (local and cluster), so the Hessian sums are ordered alike. */
    static final int PARTITIONS = 4;
    /** Row-shard height: every target of {@link #TINY} is cut into 2 to 8 shards. */
    static final int SHARD_ROWS = 16;

    /** 48 English sentences. */
    static final List<String> SENTENCES = List.of(
            "The committee met on Tuesday to discuss the budget for the coming year.",
            "Farmers in the northern regions have asked for clearer rules on water use.",
            "We must make sure that the new regulation does not place an unfair burden on small firms.",
            "The report was adopted by a large majority after a long and lively debate.",
            "Several members raised concerns about the safety of older nuclear plants.",
            "Public transport in many cities has improved a great deal over the last decade.",
            "The minister promised to publish the figures before the end of the month.",
            "Young people deserve better access to training and to their first job.",
            "Our fishermen need stable quotas and a fair share of the common stocks.",
            "It is important that consumers can trust the labels on the food they buy.",
            "The proposal aims to reduce the amount of paperwork that companies must file.",
            "Many citizens feel that decisions are taken too far away from their daily lives.",
            "The council has not yet reached an agreement on the new asylum procedures.",
            "Clean air is not a luxury; it is a basic condition for a healthy life.",
            "The rapporteur thanked her colleagues for their constructive work on the text.",
            "Trade with our neighbours has grown steadily since the borders were opened.",
            "We should invest more in research if we want to remain competitive.",
            "The court ruled that the contract had been awarded without proper competition.",
            "Energy prices have risen sharply, and households are feeling the strain.",
            "The agency will open a new office to handle the growing number of requests.",
            "Every child should be able to read and write by the end of primary school.",
            "The debate on the future of the union will continue in the autumn session.",
            "Local authorities must be given the means to carry out their new tasks.",
            "The commission has proposed a package of measures to protect the oceans.",
            "Doctors warn that the shortage of nurses is putting patients at risk.",
            "The amendment was rejected because it went beyond the scope of the directive.",
            "Tourism brings jobs to coastal towns, but it also puts pressure on nature.",
            "The railway line between the two capitals will be modernised by next year.",
            "Small and medium-sized enterprises create most of the new jobs in our economy.",
            "The vote was postponed until the legal service had given its opinion.",
            "We cannot accept that workers are paid less for doing the same job.",
            "The free movement of goods is one of the foundations of the internal market.",
            "Some countries have already met their targets for renewable energy.",
            "The hearing gave experts and citizens an opportunity to share their views.",
            "A balanced budget requires hard choices, not simple promises.",
            "The museum will be closed for repairs until the beginning of spring.",
            "Better cooperation between police forces will help us fight organised crime.",
            "The harvest was poor this year because of the long and dry summer.",
            "Members of the delegation visited a refugee camp near the border.",
            "The new law on data protection gives citizens more control over their information.",
            "Our universities attract students from all over the world.",
            "The storm caused serious damage to roads, bridges and farmland.",
            "We welcome the agreement, although it does not go as far as we had hoped.",
            "The price of bread has doubled in some regions since last winter.",
            "Independent audits are needed to make sure that public money is well spent.",
            "The orchestra played a concert in the old town square on Saturday evening.",
            "Language learning opens doors to other cultures and to new friendships.",
            "The session was closed at half past six, and the sitting resumed the next morning.");

    private JobFixtures() {
    }

    /**
     * Writes the calibration corpus: 48 paragraphs, one per line, paragraph i being sentences
     * i..i+3 (mod 48) of {@link #SENTENCES} (about 300 bytes, so 300 tokens of the byte-level
     * tokenizer). The default 10 % held-out split leaves a few paragraphs for the perplexity check.
     *
     * @param dir a directory
     * @return {@code dir/corpus.txt}
     */
    static Path writeCorpus(Path dir) {
        try {
            Files.createDirectories(dir);
            Path f = dir.resolve("corpus.txt");
            List<String> paragraphs = new java.util.ArrayList<>();
            for (int i = 0; i < SENTENCES.size(); i++) {
                StringBuilder p = new StringBuilder();
                for (int k = 0; k < 4; k++) {
                    p.append(k == 0 ? "" : " ").append(SENTENCES.get((i + k) % SENTENCES.size()));
                }
                paragraphs.add(p.toString());
            }
            Files.write(f, paragraphs, StandardCharsets.UTF_8);
            return f;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The tests' recipe: the default (SparseGPT 2:4), calibration on the corpus, 8 samples of 32
     * tokens (one batch).
     *
     * @param corpus the calibration text
     * @param mode {@code sequential} or {@code independent}
     * @return the recipe
     */
    static Recipe recipe(Path corpus, String mode) {
        return recipe(corpus, mode, 8, 32);
    }

    /**
     * The default recipe (SparseGPT 2:4) calibrated on the corpus. {@code samples · seqLen} tokens
     * above {@link PruneJob#TOKENS_PER_BATCH} make several batches, spread over the
     * {@link #PARTITIONS} calibration partitions.
     *
     * @param corpus the calibration text
     * @param mode {@code sequential} or {@code independent}
     * @param samples calibration sequences
     * @param seqLen tokens per sequence
     * @return the recipe
     */
    static Recipe recipe(Path corpus, String mode, int samples, int seqLen) {
        Map<String, String> o = new LinkedHashMap<>();
        o.put("calibration.source", corpus.toString());
        o.put("calibration.samples", Integer.toString(samples));
        o.put("calibration.seq_len", Integer.toString(seqLen));
        o.put("prune.pipeline", mode);
        return Recipe.defaults().withOverrides(o);
    }

    /** @return the {@code spark.sparkprune.*} settings of every test run */
    static Map<String, String> sparkPruneConf() {
        Map<String, String> c = new LinkedHashMap<>();
        c.put("spark.sparkprune.calibration.partitions", Integer.toString(PARTITIONS));
        c.put("spark.sparkprune.rowShard.maxRows", Integer.toString(SHARD_ROWS));
        return c;
    }

    /**
     * A {@code local[2]} session with {@link #sparkPruneConf()}.
     *
     * @return the session; stop it
     */
    static SparkSession localSession() {
        SparkSession.Builder b = SparkSession.builder().master("local[2]").appName("prune-job-test")
                .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "2");
        sparkPruneConf().forEach(b::config);
        return b.getOrCreate();
    }

    /**
     * @param dir a directory
     * @return relative path → bytes of every regular file under it, sorted
     */
    static TreeMap<String, byte[]> files(Path dir) {
        TreeMap<String, byte[]> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                m.put(dir.relativize(p).toString(), Files.readAllBytes(p));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return m;
    }

    /**
     * @param dir an output directory
     * @return its report.json
     */
    static JsonNode report(Path dir) {
        try {
            return JSON.readTree(dir.resolve("report.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * @param ck a checkpoint
     * @param name a tensor
     * @return its raw little-endian bytes
     */
    static byte[] rawBytes(ShardedCheckpoint ck, String name) {
        long len = ck.info(name).byteLength();
        java.nio.ByteBuffer b = ck.readBytes(name, 0, (int) len);
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }
}
