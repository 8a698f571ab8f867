/**
 * Per-layer commit protocol of the prune job, on any Hadoop {@code FileSystem} (plain Hadoop code,
 * usable from executors).
 *
 * <p>Layout under the output directory:
 * <pre>
 * &lt;out&gt;/_staging/_RUN.json                      run fingerprint (recipe + model), written first
 * &lt;out&gt;/_staging/layer-00012/&lt;tensor&gt;.shard-00003-of-00008.bin   row shards, written by tasks
 * &lt;out&gt;/_staging/layer-00012/_metrics.json       per-tensor metrics, written by the driver
 * &lt;out&gt;/_staging/layer-00012/_COMMITTED          the marker: JSON listing every shard with size and SHA-256
 * </pre>
 * Every file is written to a {@code _tmp-*} name, made durable ({@code hsync}, or
 * {@code FileChannel.force} for the local file system whose checksummed streams cannot sync), and
 * renamed; the marker is written last, so a layer is committed exactly when its {@code _COMMITTED}
 * exists. A task attempt that finds its shard already published (a retried or speculative attempt)
 * checks that the bytes are identical and keeps the published file.
 *
 * <p>{@link io.sparkprune.jobs.commit.CommitLog} is the driver side: it opens a run (fresh, or
 * {@code --resume}: validate committed layers, refuse a different fingerprint, delete partial
 * layers), hands {@link io.sparkprune.jobs.commit.LayerStaging} handles to tasks, commits layers and
 * lists committed shards per tensor for the final assembly.
 */
package io.sparkprune.jobs.commit;
