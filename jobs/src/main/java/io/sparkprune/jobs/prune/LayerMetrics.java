package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparkprune.pipeline.recipe.Recipe;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Sums shard measurements into the per-tensor entries of report.json (and of each layer's commit). */
final class LayerMetrics {
    private LayerMetrics() {
    }

    static List<ObjectNode> summarise(int layer, LayerPlan plan, Map<String, GroupStats> stats, List<ShardMetrics> shards,
                                      Recipe recipe) {
        Map<String, List<ShardMetrics>> byTensor = new LinkedHashMap<>();
        for (LayerPlan.Target t : plan.targets(layer)) {
            byTensor.put(t.name(), new ArrayList<>());
        }
        for (ShardMetrics m : shards) {
            byTensor.get(m.tensor()).add(m);
        }
        List<ObjectNode> out = new ArrayList<>();
        for (LayerPlan.Target t : plan.targets(layer)) {
            List<ShardMetrics> ms = byTensor.get(t.name());
            long elements = 0;
            long zeros = 0;
            long violations = 0;
            long nonFinite = 0;
            double num = 0;
            double den = 0;
            double loss = 0;
            double secs = 0;
            java.util.SortedSet<String> backends = new java.util.TreeSet<>();
            for (ShardMetrics m : ms) {
                backends.add(m.backend());
                elements += m.elements();
                zeros += m.zeros();
                violations += m.patternViolations();
                nonFinite += m.nonFinite();
                num += m.errorNumerator();
                den += m.errorDenominator();
                loss += m.solverLoss();
                secs += m.seconds();
            }
            GroupStats gs = stats.get(t.group());
            ObjectNode n = JsonNodeFactory.instance.objectNode();
            n.put("layer", layer);
            n.put("tensor", t.name());
            n.put("group", t.group());
            n.put("rows", t.info().rows());
            n.put("cols", t.info().cols());
            n.put("dtype", t.info().dtype().safetensorsName());
            n.put("method", recipe.prune().method().id());
            n.put("pattern", recipe.prune().pattern().spec());
            n.put("elements", elements);
            n.put("zeros", zeros);
            n.put("sparsity", elements == 0 ? 0 : (double) zeros / elements);
            n.put("pattern_violations", violations);
            n.put("pattern_verified", violations == 0);
            n.put("all_finite", nonFinite == 0);
            n.put("relative_reconstruction_error", den > 0 ? Math.sqrt(Math.max(0, num) / den) : 0);
            n.put("solver_loss", loss);
            n.put("calibration_tokens", gs.hessian().count());
            if (gs.factor() != null) {
                n.put("dampening", gs.factor().dampening());
                n.put("dead_inputs", gs.factor().deadCount());
            }
            n.put("shards", ms.size());
            n.put("seconds", secs);
            n.put("backend", String.join(",", backends));
            n.put("bytes_dense", t.info().rows() * t.info().cols() * t.info().dtype().byteSize());
            out.add(n);
        }
        return out;
    }
}
