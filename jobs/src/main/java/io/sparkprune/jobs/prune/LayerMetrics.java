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

    /**
     * The per-tensor entries of one layer.
     *
     * @param layer block index
     * @param plan the layer plan (targets in execution order)
     * @param groups the summary of each calibration group of the layer, by group name
     * @param shards the measurements of every row shard of the layer, in plan order (sums follow it)
     * @param recipe the run's recipe
     * @return one entry per target, in plan order
     */
    static List<ObjectNode> summarise(int layer, LayerPlan plan, Map<String, GroupSummary> groups, List<ShardMetrics> shards,
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
            long gridViolations = -1;
            List<double[]> rowLosses = new ArrayList<>();
            for (ShardMetrics m : ms) {
                if (m.gridViolations() >= 0) {
                    gridViolations = Math.max(0, gridViolations) + m.gridViolations();
                }
                if (m.rowLoss() != null) {
                    rowLosses.add(m.rowLoss());
                }
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
            GroupSummary gs = groups.get(t.group());
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
            if (gridViolations >= 0) {
                n.put("quantization_grid_violations", gridViolations);
                n.put("quantization_grid_verified", gridViolations == 0);
            }
            n.put("relative_reconstruction_error", den > 0 ? Math.sqrt(Math.max(0, num) / den) : 0);
            n.put("solver_loss", loss);
            if (!rowLosses.isEmpty()) {
                putRowLossSummary(n, rowLosses);
            }
            n.put("calibration_tokens", gs.calibrationTokens());
            if (gs.factored()) {
                n.put("dampening", gs.dampening());
                n.put("dead_inputs", gs.deadInputs());
            }
            n.put("shards", ms.size());
            n.put("seconds", secs);
            n.put("backend", String.join(",", backends));
            n.put("bytes_dense", t.info().rows() * t.info().cols() * t.info().dtype().byteSize());
            out.add(n);
        }
        return out;
    }

    /** The per-row loss fields of a tensor entry, in order. */
    static final List<String> ROW_LOSS_FIELDS = List.of("row_loss_min", "row_loss_p50", "row_loss_p90", "row_loss_max",
            "row_loss_mean");

    /**
     * Adds {@link #ROW_LOSS_FIELDS}: min, median, 90th percentile, max and mean of SparseGPT's per-row
     * losses ({@link io.sparkprune.calibration.solver.PruneResult#rowLoss()}) over all rows of the
     * tensor. Percentiles interpolate linearly between order statistics (p-quantile at 0-based rank
     * p·(n − 1), numpy's default).
     *
     * @param n the tensor entry, changed in place
     * @param shards the row losses of each shard (any order)
     */
    static void putRowLossSummary(ObjectNode n, List<double[]> shards) {
        int total = shards.stream().mapToInt(a -> a.length).sum();
        if (total == 0) {
            return;
        }
        double[] all = new double[total];
        int p = 0;
        double sum = 0;
        for (double[] a : shards) {
            System.arraycopy(a, 0, all, p, a.length);
            p += a.length;
            for (double v : a) {
                sum += v;
            }
        }
        java.util.Arrays.sort(all);
        n.put("row_loss_min", all[0]);
        n.put("row_loss_p50", quantile(all, 0.5));
        n.put("row_loss_p90", quantile(all, 0.9));
        n.put("row_loss_max", all[total - 1]);
        n.put("row_loss_mean", sum / total);
    }

    /**
     * @param sorted ascending values, at least one
     * @param q quantile in [0, 1]
     * @return the linear interpolation at rank q·(n − 1)
     */
    static double quantile(double[] sorted, double q) {
        double rank = q * (sorted.length - 1);
        int lo = (int) Math.floor(rank);
        int hi = Math.min(sorted.length - 1, lo + 1);
        return sorted[lo] + (rank - lo) * (sorted[hi] - sorted[lo]);
    }
}
