package io.sparkprune.jobs.commit;

import java.io.Serializable;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * One published shard: which layer and tensor it belongs to, its place among the tensor's shards,
 * its file name inside the layer's staging directory, its size and SHA-256. Returned by
 * {@link LayerStaging#writeShard} in a task and sent to the driver, which lists all of a layer's
 * records in its {@code _COMMITTED} marker.
 *
 * <p>A tensor's data is the concatenation of its shards in {@code index} order (0 to
 * {@code count - 1}); what the bytes encode (for the prune job: a block of rows in the tensor's
 * dtype, little-endian) is up to the writer.
 *
 * @param layer the layer index, &gt;= 0
 * @param tensor the tensor name as in the checkpoint, e.g. {@code model.layers.3.mlp.down_proj.weight}
 * @param index this shard's position, 0 &lt;= index &lt; count
 * @param count the tensor's number of shards, &gt;= 1
 * @param file file name inside the layer's staging directory ({@link ShardNames#fileName})
 * @param bytes file size in bytes, &gt;= 0
 * @param sha256 SHA-256 of the file, 64 lower-case hex digits
 * @serial exclude
 */
public record ShardRecord(int layer, String tensor, int index, int count, String file, long bytes, String sha256)
        implements Serializable {
    private static final Pattern HEX64 = Pattern.compile("[0-9a-f]{64}");

    /**
     * Checks the fields.
     *
     * @param layer the layer index
     * @param tensor the tensor name
     * @param index this shard's position
     * @param count the tensor's number of shards
     * @param file file name inside the layer's staging directory
     * @param bytes file size in bytes
     * @param sha256 SHA-256 of the file
     * @throws IllegalArgumentException if a field is out of range
     */
    public ShardRecord {
        Objects.requireNonNull(tensor, "tensor");
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(sha256, "sha256");
        if (layer < 0 || count < 1 || index < 0 || index >= count || bytes < 0 || tensor.isEmpty()) {
            throw new IllegalArgumentException("invalid shard record: layer " + layer + ", tensor '" + tensor
                    + "', index " + index + " of " + count + ", " + bytes + " bytes");
        }
        if (!HEX64.matcher(sha256).matches()) {
            throw new IllegalArgumentException("sha256 of " + file + " must be 64 lower-case hex digits, got '"
                    + sha256 + "'");
        }
        if (!file.equals(ShardNames.fileName(tensor, index, count))) {
            throw new IllegalArgumentException("shard file of " + tensor + " " + index + "/" + count + " must be "
                    + ShardNames.fileName(tensor, index, count) + ", got " + file);
        }
    }
}
