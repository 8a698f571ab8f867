/**
 * The prune job on Spark: layer-sequential SparseGPT with calibration activations kept on the
 * executors, Hessians reduced in a fixed order, weights solved in row shards read straight from
 * the checkpoint, and a commit per layer so a killed job resumes. {@link io.sparkprune.jobs.prune.PruneJob}
 * is the driver; docs/architecture.md, "Spark plan", describes the stages.
 */
package io.sparkprune.jobs.prune;
