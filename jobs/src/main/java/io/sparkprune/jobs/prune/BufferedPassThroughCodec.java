package io.sparkprune.jobs.prune;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import org.apache.spark.SparkConf;
import org.apache.spark.io.CompressionCodec;

/**
 * A Spark {@link CompressionCodec} that does not compress: it only buffers
 * ({@value #BUFFER_BYTES} bytes each way). {@code sparkprune prune} makes it the default
 * {@code spark.io.compression.codec} (a user's setting wins): the job's shuffles carry only fp64
 * partial Hessians (about 0.7 GB per calibration partition and layer for a 7B model), which LZ4 does
 * not shrink, so compressing them costs executor CPU for nothing; but with {@code spark.shuffle.compress}
 * off nothing buffers Spark's shuffle file streams, and Java serialization reads its source 1 KiB per
 * call (about a million {@code read} calls per layer). This codec keeps the stream buffering of a codec
 * without its work. Broadcasts (Spark's task binaries) go through it too, uncompressed.
 *
 * <p>Spark instantiates it by class name with a {@link SparkConf} constructor
 * ({@code CompressionCodec.createCodec}); it must be on the classpath of the driver and the executors
 * (it is in the application jar).
 */
public final class BufferedPassThroughCodec implements CompressionCodec {
    /** Buffer of each stream, bytes. */
    static final int BUFFER_BYTES = 1 << 18;

    /**
     * @param conf Spark's configuration (not read)
     */
    public BufferedPassThroughCodec(SparkConf conf) {
    }

    /**
     * @param s the underlying stream
     * @return s behind a {@value #BUFFER_BYTES}-byte buffer; closing it flushes and closes s
     */
    @Override
    public OutputStream compressedOutputStream(OutputStream s) {
        return new BufferedOutputStream(s, BUFFER_BYTES);
    }

    /**
     * @param s the underlying stream
     * @return s behind a {@value #BUFFER_BYTES}-byte buffer
     */
    @Override
    public InputStream compressedInputStream(InputStream s) {
        return new BufferedInputStream(s, BUFFER_BYTES);
    }
}
