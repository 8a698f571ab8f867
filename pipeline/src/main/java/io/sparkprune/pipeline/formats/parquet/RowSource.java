package io.sparkprune.pipeline.formats.parquet;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import java.util.Arrays;
import java.util.Objects;

/**
 * Where a part writer reads the dense rows of its work items. Rows are the outermost dimension
 * ({@link ParquetShardManifest.Tensor#rows()}); a scalar is one row of one element.
 */
public interface RowSource {

    /** @return where the rows come from, for messages */
    String source();

    /**
     * @param tensor a tensor name
     * @return its element type
     */
    DType dtype(String tensor);

    /**
     * @param tensor a tensor name
     * @return its shape
     */
    long[] shape(String tensor);

    /**
     * @param tensor a tensor name
     * @param start first row
     * @param end one past the last row
     * @return the rows' bytes, {@code (end − start) · rowBytes}, little-endian row-major
     * @throws io.sparkprune.kernels.InvalidInputException when the stored data is malformed
     */
    byte[] rows(String tensor, long start, long end);

    /**
     * Reads rows by byte range ({@link ShardedCheckpoint#readRows}: positioned reads on Hadoop file
     * systems, mmap windows locally); the tensor is never read whole.
     *
     * @param ckpt an open checkpoint (not closed by the view)
     * @return the view
     */
    static RowSource of(ShardedCheckpoint ckpt) {
        Objects.requireNonNull(ckpt, "ckpt");
        return new RowSource() {
            @Override
            public String source() {
                return ckpt.source();
            }

            @Override
            public DType dtype(String tensor) {
                return ckpt.info(tensor).dtype();
            }

            @Override
            public long[] shape(String tensor) {
                return ckpt.info(tensor).shape();
            }

            @Override
            public byte[] rows(String tensor, long start, long end) {
                HostTensor t = ckpt.info(tensor).rank() == 0 ? ckpt.read(tensor) : ckpt.readRows(tensor, start, end - start);
                return bytes(t);
            }
        };
    }

    /**
     * Reads each tensor whole (the last one is kept for the next range) and slices its rows: for
     * sources that cannot read a range, such as a sparse checkpoint.
     *
     * @param tensors the tensors (not closed by the view)
     * @return the view
     */
    static RowSource of(DenseTensors tensors) {
        Objects.requireNonNull(tensors, "tensors");
        return new RowSource() {
            private String cachedName;
            private byte[] cached;

            @Override
            public String source() {
                return tensors.source();
            }

            @Override
            public DType dtype(String tensor) {
                return tensors.dtype(tensor);
            }

            @Override
            public long[] shape(String tensor) {
                return tensors.shape(tensor);
            }

            @Override
            public synchronized byte[] rows(String tensor, long start, long end) {
                if (!tensor.equals(cachedName)) {
                    cached = bytes(tensors.read(tensor));
                    cachedName = tensor;
                }
                ParquetShardManifest.Tensor t = new ParquetShardManifest.Tensor(tensor, dtype(tensor), shape(tensor));
                if (start < 0 || end < start || end > t.rows()) {
                    throw new IllegalArgumentException(tensor + ": rows [" + start + ", " + end + ") outside "
                            + Arrays.toString(t.shape()));
                }
                return Arrays.copyOfRange(cached, (int) (start * t.rowBytes()), (int) (end * t.rowBytes()));
            }
        };
    }

    /**
     * @param t a tensor
     * @return a copy of its bytes
     * @throws FormatException when it is 2 GiB or more
     */
    static byte[] bytes(HostTensor t) {
        if (t.byteLength() > Integer.MAX_VALUE - 8) {
            throw new FormatException(Arrays.toString(t.shape()), "a row range over 2 GiB cannot be held in memory; "
                    + "use smaller work items");
        }
        byte[] b = new byte[(int) t.byteLength()];
        t.data().duplicate().get(b);
        return b;
    }
}
