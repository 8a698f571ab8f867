/**
 * The generic layer-sequential pruning driver, written once against
 * {@link io.sparkprune.pipeline.forward.ModelAdapter} for every model family (no per-model copies of
 * the loop, unlike the SparseGPT reference's {@code opt.py}/{@code llama.py}/{@code bloom.py}). This
 * is the single-process form of the plan the Spark job distributes (ARCHITECTURE.md §1, §5).
 */
package io.sparkprune.pipeline.driver;
