package io.sparkprune.jobs.prune;

import io.sparkprune.kernels.DType;
import java.io.Serializable;

/**
 * One row shard of one target weight: rows {@code [rowStart, rowStart + rowCount)} of a
 * {@code rows × cols} tensor, shard {@code shardIndex} of {@code shardCount}.
 *
 * @param layer block index
 * @param tensor full tensor name
 * @param group calibration group whose Hessian applies
 * @param rows out_features of the whole tensor
 * @param cols in_features
 * @param dtype the checkpoint's dtype (the shard is written in it)
 * @param rowStart first row
 * @param rowCount rows in this shard
 * @param shardIndex index of this shard
 * @param shardCount number of shards of the tensor
 */
record SolveTask(int layer, String tensor, String group, int rows, int cols, DType dtype, long rowStart, int rowCount,
                 int shardIndex, int shardCount) implements Serializable {
}
