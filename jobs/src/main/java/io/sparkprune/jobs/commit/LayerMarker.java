package io.sparkprune.jobs.commit;

import java.util.List;
import java.util.Objects;

/**
 * Content of a layer's {@code _COMMITTED} marker (JSON, fields in this order):
 * <pre>{@code
 * {
 *   "format" : "sparkprune.layer-commit.v1",
 *   "layer" : 12,
 *   "fingerprint" : "<run fingerprint: recipe + model hash, from the caller>",
 *   "shards" : [ {"layer": 12, "tensor": "...", "index": 0, "count": 4,
 *                 "file": "....shard-00000-of-00004.bin", "bytes": 8192, "sha256": "..."}, ... ],
 *   "metrics" : {"file": "_metrics.json", "bytes": 512, "sha256": "..."}
 * }
 * }</pre>
 * Shards are sorted by tensor name, then index. The marker holds no time stamp, so two runs of the
 * same layer write identical markers.
 *
 * @param format the format tag, {@value #FORMAT}
 * @param layer the layer index
 * @param fingerprint the run fingerprint
 * @param shards every shard of the layer, sorted
 * @param metrics the layer's metrics file
 */
public record LayerMarker(String format, int layer, String fingerprint, List<ShardRecord> shards,
        FileDigest metrics) {
    /** Format tag of version 1 markers. */
    public static final String FORMAT = "sparkprune.layer-commit.v1";

    /**
     * Null checks; copies the shard list.
     *
     * @param format the format tag, {@value #FORMAT}
     * @param layer the layer index
     * @param fingerprint the run fingerprint
     * @param shards every shard of the layer, sorted (copied)
     * @param metrics the layer's metrics file
     */
    public LayerMarker {
        Objects.requireNonNull(format, "format");
        Objects.requireNonNull(fingerprint, "fingerprint");
        Objects.requireNonNull(metrics, "metrics");
        shards = List.copyOf(shards);
    }
}
