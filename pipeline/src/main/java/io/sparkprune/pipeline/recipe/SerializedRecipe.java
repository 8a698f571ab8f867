package io.sparkprune.pipeline.recipe;

import java.io.Serial;
import java.io.Serializable;

/**
 * Java serialization form of {@link Recipe} and {@link PruneStage} (Spark closures, broadcasts):
 * the resolved recipe's YAML, parsed again on reading. So the values travel in the one format that
 * is validated, and the parts that are not serializable themselves (compiled regexes, optionals,
 * calibration records) need not be.
 *
 * @param yaml {@link Recipe#toYaml()} of the recipe (for a stage: of a recipe holding it)
 * @param stageOnly true to resolve to the recipe's {@link Recipe#prune()} stage
 */
record SerializedRecipe(String yaml, boolean stageOnly) implements Serializable {
    @Serial
    private static final long serialVersionUID = 1L;

    @Serial
    private Object readResolve() {
        Recipe r = Recipe.parse(yaml, "deserialized recipe");
        return stageOnly ? r.prune() : r;
    }
}
