/**
 * Pruning recipes: a strict YAML schema, modelled on llm-compressor recipes, for what to prune
 * (targets, ignore, method, sparsity pattern, dampening, block size, mask scope, joint
 * quantization, pipeline mode) and on which data to calibrate and evaluate.
 *
 * <ul>
 *   <li>{@link io.sparkprune.pipeline.recipe.Recipe} parses and validates a recipe once (patterns,
 *       quantization and regexes parsed, ranges checked), applies command-line overrides and writes
 *       the resolved recipe back as YAML.</li>
 *   <li>{@link io.sparkprune.pipeline.recipe.TensorSelector} decides which tensors are pruned.</li>
 *   <li>{@link io.sparkprune.pipeline.recipe.QuantSyntax} reads the compact quantization form
 *       ({@code int4-g128}).</li>
 *   <li>{@link io.sparkprune.pipeline.recipe.RecipeKeys} lists the schema's keys and the CLI flag of
 *       each.</li>
 * </ul>
 *
 * <p>Every error is a {@link io.sparkprune.pipeline.recipe.RecipeException} naming the file, the key
 * path and the fix. {@code docs/recipes.md} documents the schema; {@code conf/recipes/} holds the
 * shipped recipes.
 */
package io.sparkprune.pipeline.recipe;
