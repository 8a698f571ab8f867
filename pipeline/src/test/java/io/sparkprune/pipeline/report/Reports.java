package io.sparkprune.pipeline.report;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Random;

/** Synthetic report trees for the report tests (shaped as the job writes them). */
final class Reports {
    static final String[] BERT = {"attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "intermediate.dense", "output.dense"};
    static final String[] GROUPS = {"qkv", "qkv", "qkv", "o", "up", "down"};

    private Reports() {
    }

    /**
     * @param n a JSON tree
     * @return the tree as a JSON parser reads its text (integer nodes of the narrowest type), so
     *     trees built in memory compare equal to trees read from files
     */
    static com.fasterxml.jackson.databind.JsonNode normalised(com.fasterxml.jackson.databind.JsonNode n) {
        try {
            return new com.fasterxml.jackson.databind.ObjectMapper().readTree(n.toString());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** An encoder report with {@code layers} × 6 tensors, random but valid values. */
    static ObjectNode encoder(int layers, long seed) {
        Random rnd = new Random(seed);
        ObjectNode r = JsonNodeFactory.instance.objectNode();
        r.put("format", ReportFormat.FORMAT);
        r.put("kind", ReportFormat.KIND_PRUNE);
        r.put("model", "default <&>");
        r.put("output", "/tmp/out");
        r.putObject("recipe").putObject("prune").put("pattern", "2:4");
        ObjectNode run = r.putObject("run");
        run.put("spark_master", "local[2]");
        run.putObject("stage_seconds").put("solve", 1.5);
        ArrayNode ts = r.putArray("tensors");
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < BERT.length; i++) {
                ObjectNode t = ts.addObject();
                long rows = 8 + rnd.nextInt(8);
                long cols = 16;
                long zeros = rows * cols / 2 - (i == 5 && l == 1 ? 3 : 0);
                t.put("layer", l);
                t.put("tensor", "encoder.layer." + l + "." + BERT[i] + ".weight");
                t.put("group", GROUPS[i]);
                t.put("rows", rows);
                t.put("cols", cols);
                t.put("dtype", "F32");
                t.put("method", "sparsegpt");
                t.put("pattern", "2:4");
                t.put("elements", rows * cols);
                t.put("zeros", zeros);
                t.put("sparsity", (double) zeros / (rows * cols));
                t.put("pattern_violations", 0);
                t.put("pattern_verified", true);
                t.put("all_finite", true);
                t.put("relative_reconstruction_error", 0.05 + 0.3 * rnd.nextDouble());
                t.put("solver_loss", rnd.nextDouble());
                t.put("calibration_tokens", 1000 + rnd.nextInt(100));
                if (i != 4) {
                    t.put("dampening", 0.01);
                }
                t.put("dead_inputs", 0);
                t.put("shards", 1);
                t.put("seconds", rnd.nextDouble());
                t.put("backend", "cpu");
                t.put("bytes_dense", rows * cols * 4);
            }
        }
        ObjectNode q = r.putObject("quality");
        q.put("metric", "embedding_cosine");
        q.put("sentences", 40);
        q.put("mean_cosine", 0.91);
        q.put("min_cosine", 0.8);
        q.put("top10_neighbour_agreement", 0.7);
        ObjectNode s = r.putArray("storage").addObject();
        s.put("format", "hf");
        s.put("tensors", ts.size());
        s.put("dense_bytes", 123456789L);
        s.put("stored_bytes", 123456789L);
        s.put("ratio", 1.0);
        return r;
    }
}
