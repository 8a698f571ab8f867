package io.sparkprune.jobs.commit;

import java.io.IOException;
import java.io.OutputStream;
import java.io.Serializable;
import java.util.Objects;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Where the tasks of one layer write their shards: a serializable handle (layer index and staging
 * directory URI) that the driver gets from {@link CommitLog#stage(int)} and ships to tasks.
 *
 * <p>{@link #writeShard} is idempotent per shard: every attempt writes a private temp file, syncs
 * it and renames it to the shard's fixed name. If the shard is already published (an earlier
 * attempt of the same task won), the attempt compares size and SHA-256 with the published file,
 * deletes its temp file and returns the same record; different bytes throw
 * {@link NondeterministicShardException} and leave the published file untouched. The output is
 * therefore the same whichever attempt wins.
 *
 * @param layer the layer index
 * @param dir the layer's staging directory, a fully qualified URI string
 * @serial exclude
 */
public record LayerStaging(int layer, String dir) implements Serializable {
    /**
     * Null check.
     *
     * @param layer the layer index
     * @param dir the layer's staging directory, a fully qualified URI string
     */
    public LayerStaging {
        Objects.requireNonNull(dir, "dir");
    }

    /** Writes the content of one shard. */
    @FunctionalInterface
    public interface ShardBody {
        /**
         * @param out where to write; do not close it
         * @throws IOException on write failure
         */
        void writeTo(OutputStream out) throws IOException;
    }

    /** @return the staging directory as a Hadoop path */
    public Path path() {
        return new Path(dir);
    }

    /**
     * @param conf Hadoop configuration (on executors, the job's broadcast configuration)
     * @return the file system of the staging directory
     * @throws IOException if it cannot be instantiated
     */
    public FileSystem fileSystem(Configuration conf) throws IOException {
        return path().getFileSystem(conf);
    }

    /**
     * Writes and publishes one shard (see the class comment for retries).
     *
     * @param fs the staging directory's file system
     * @param tensor tensor name
     * @param index shard index, 0 &lt;= index &lt; count
     * @param count the tensor's number of shards
     * @param body writes the shard's bytes
     * @return the record to send to the driver for {@link CommitLog#commit}
     * @throws NondeterministicShardException if the shard is already published with other bytes
     * @throws IOException on write failure (the attempt's temp file is deleted, best effort)
     */
    public ShardRecord writeShard(FileSystem fs, String tensor, int index, int count, ShardBody body)
            throws IOException {
        String name = ShardNames.fileName(tensor, index, count);
        Path target = new Path(path(), name);
        Path temp = Durable.tempSibling(target);
        Durable.Written w = Durable.writeTemp(fs, temp, body::writeTo);
        ShardRecord record = new ShardRecord(layer, tensor, index, count, name, w.bytes(), w.sha256());
        if (!fs.exists(target) && Durable.rename(fs, temp, target)) {
            return record;
        }
        // Published by another attempt (or a concurrent rename won on a store that does not overwrite).
        Durable.deleteQuietly(fs, temp);
        if (!fs.exists(target)) {
            throw new IOException("could not publish shard " + target + " (rename of " + temp + " failed)");
        }
        FileStatus existing = fs.getFileStatus(target);
        String existingSha = Durable.sha256(fs, target);
        if (existing.getLen() != w.bytes() || !existingSha.equals(w.sha256())) {
            throw new NondeterministicShardException("shard " + target + " is already published with "
                    + existing.getLen() + " bytes, SHA-256 " + existingSha + ", but this attempt produced "
                    + w.bytes() + " bytes, SHA-256 " + w.sha256() + "; shards must be deterministic (same "
                    + "inputs, same bytes), so this is a bug in the code that computed tensor " + tensor);
        }
        return record;
    }

    /**
     * Convenience for {@link #writeShard(FileSystem, String, int, int, ShardBody)} with an array.
     *
     * @param fs the staging directory's file system
     * @param tensor tensor name
     * @param index shard index
     * @param count the tensor's number of shards
     * @param content the shard's bytes
     * @return the record
     * @throws IOException on write failure
     */
    public ShardRecord writeShard(FileSystem fs, String tensor, int index, int count, byte[] content)
            throws IOException {
        return writeShard(fs, tensor, index, count, out -> out.write(content));
    }
}
