package io.sparkprune.jobs.prune;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.Arrays;
import org.apache.spark.SparkConf;
import org.apache.spark.io.CompressionCodec;
import org.junit.jupiter.api.Test;

/**
 * The pass-through codec: Spark creates it by name, it leaves the bytes as they are, and it buffers
 * Java serialization's 1 KiB reads of an unbuffered source (a Hessian partial's bulk doubles written by
 * {@code BulkArrays}) into a few large ones.
 */
class BufferedPassThroughCodecTest {

    @Test
    void sparkCreatesItByNameAndTheBytesPassUnchanged() throws Exception {
        CompressionCodec codec = CompressionCodec.createCodec(new SparkConf(false), BufferedPassThroughCodec.class.getName());
        assertThat(codec).isInstanceOf(BufferedPassThroughCodec.class);
        byte[] data = new byte[3 * BufferedPassThroughCodec.BUFFER_BYTES + 17];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 31 + 7);
        }
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        try (var out = codec.compressedOutputStream(sink)) {
            out.write(data, 0, 100);
            out.write(data, 100, data.length - 100);
        }
        assertThat(sink.toByteArray()).isEqualTo(data); // no header, no compression
        try (InputStream in = codec.compressedInputStream(new ByteArrayInputStream(sink.toByteArray()))) {
            assertThat(in.readAllBytes()).isEqualTo(data);
        }
    }

    @Test
    void javaSerializationReadsAnUnbufferedSourceInFewCallsThroughIt() throws Exception {
        double[] d = new double[1_000_000]; // 8 MB, as BulkArrays writes a Hessian partial's sums
        Arrays.setAll(d, i -> i * 0.25);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            io.sparkprune.kernels.BulkArrays.writeDoubles(out, d);
        }
        BufferedPassThroughCodec codec = new BufferedPassThroughCodec(new SparkConf(false));
        assertThat(readCalls(bytes.toByteArray(), null, d)).as("without a codec: 1 KiB per call").isGreaterThan(7000);
        assertThat(readCalls(bytes.toByteArray(), codec, d)).as("through the codec").isLessThan(100);
    }

    /** Reads the array back through an unbuffered source (and the codec, if given); returns the source's read calls. */
    private static int readCalls(byte[] serialized, BufferedPassThroughCodec codec, double[] expected) throws IOException {
        int[] calls = new int[1];
        InputStream source = new FilterInputStream(new ByteArrayInputStream(serialized)) {
            @Override
            public int read() throws IOException {
                calls[0]++;
                return super.read();
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                calls[0]++;
                return super.read(b, off, len);
            }
        };
        try (ObjectInputStream in = new ObjectInputStream(codec == null ? source : codec.compressedInputStream(source))) {
            double[] back = io.sparkprune.kernels.BulkArrays.readDoubles(in, expected.length);
            assertThat(Arrays.equals(back, expected)).isTrue();
        }
        return calls[0];
    }
}
