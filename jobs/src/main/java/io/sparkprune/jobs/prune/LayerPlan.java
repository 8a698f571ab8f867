package io.sparkprune.jobs.prune;

import io.sparkprune.calibration.sparsity.SparsityPattern;
import io.sparkprune.pipeline.forward.CalibrationGroup;
import io.sparkprune.pipeline.forward.LinearSpec;
import io.sparkprune.pipeline.forward.ModelAdapter;
import io.sparkprune.pipeline.recipe.PruneMethod;
import io.sparkprune.pipeline.recipe.Recipe;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Which weights of each block are pruned, their calibration groups, and their row shards — from
 * metadata only (checkpoint headers and the recipe), checked up front so that a shape the pattern
 * cannot take fails before any work starts.
 *
 * <p>Row shards have at most {@code maxRows} rows, rounded down to a multiple of the block
 * pattern's tile height; magnitude pruning takes one shard per tensor (its unstructured threshold
 * is per matrix).
 */
final class LayerPlan {
    /**
     * A pruned weight.
     *
     * @param layer block index
     * @param name full tensor name
     * @param group calibration group name
     * @param info its header entry
     */
    record Target(int layer, String name, String group, TensorInfo info) {
    }

    private final Map<Integer, List<Target>> targets;
    private final Map<Integer, List<SolveTask>> tasks;

    private LayerPlan(Map<Integer, List<Target>> targets, Map<Integer, List<SolveTask>> tasks) {
        this.targets = targets;
        this.tasks = tasks;
    }

    static LayerPlan of(ModelAdapter adapter, ShardedCheckpoint ck, Recipe recipe, int maxRows) {
        SparsityPattern pattern = recipe.prune().pattern();
        int blockSize = recipe.prune().blockSize();
        int rowAlign = pattern instanceof SparsityPattern.Block b ? b.rows() : 1;
        Map<Integer, List<Target>> targets = new LinkedHashMap<>();
        Map<Integer, List<SolveTask>> tasks = new LinkedHashMap<>();
        for (int layer = 0; layer < adapter.numLayers(); layer++) {
            List<Target> lt = new ArrayList<>();
            List<SolveTask> ts = new ArrayList<>();
            for (CalibrationGroup g : adapter.calibrationGroups()) {
                for (LinearSpec spec : g.linears()) {
                    String name = adapter.layerPrefix(layer) + spec.weight();
                    if (!recipe.isTarget(name)) {
                        continue;
                    }
                    TensorInfo info = ck.info(name);
                    if (info.rank() != 2) {
                        continue;
                    }
                    int rows = (int) info.rows();
                    int cols = (int) info.cols();
                    pattern.checkShape(name, rows, cols, blockSize);
                    lt.add(new Target(layer, name, g.name(), info));
                    int shardRows = recipe.prune().method() == PruneMethod.MAGNITUDE ? rows
                            : Math.max(rowAlign, (Math.min(maxRows, rows) / rowAlign) * rowAlign);
                    int count = (rows + shardRows - 1) / shardRows;
                    for (int i = 0; i < count; i++) {
                        int start = i * shardRows;
                        ts.add(new SolveTask(layer, name, g.name(), rows, cols, info.dtype(), start,
                                Math.min(shardRows, rows - start), i, count));
                    }
                }
            }
            targets.put(layer, lt);
            tasks.put(layer, ts);
        }
        return new LayerPlan(targets, tasks);
    }

    /** @return number of target tensors over all layers */
    int targetCount() {
        return targets.values().stream().mapToInt(List::size).sum();
    }

    /** @return targets of a layer, in execution order */
    List<Target> targets(int layer) {
        return targets.get(layer);
    }

    /** @return the row-shard tasks of a layer */
    List<SolveTask> tasks(int layer) {
        return tasks.get(layer);
    }

    /** @return names of the calibration groups with at least one target in the layer, in execution order */
    List<String> groups(int layer) {
        List<String> g = new ArrayList<>();
        for (Target t : targets.get(layer)) {
            if (!g.contains(t.group())) {
                g.add(t.group());
            }
        }
        return g;
    }
}
