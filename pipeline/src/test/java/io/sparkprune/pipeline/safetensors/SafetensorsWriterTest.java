package io.sparkprune.pipeline.safetensors;

import static io.sparkprune.pipeline.safetensors.Fixtures.bytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The writer's state machine, streaming writes, and the no-partial-output guarantee. */
class SafetensorsWriterTest {
    @TempDir
    Path tmp;

    private static final long[] A_SHAPE = {4, 8};

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private static ByteBuffer buf(byte[] b) {
        return ByteBuffer.wrap(b);
    }

    @Test
    void streamsTensorsInChunks() throws Exception {
        Random r = new Random(3);
        HostTensor a = Fixtures.randomTensor(r, DType.F32, A_SHAPE);
        HostTensor e = Fixtures.randomTensor(r, DType.BF16, new long[] {0});
        HostTensor b = Fixtures.randomTensor(r, DType.I16, new long[] {1000});
        Path target = tmp.resolve("s.safetensors");
        try (SafetensorsWriter w = SafetensorsWriter.create(target)) {
            assertThat(w.state()).isEqualTo(SafetensorsWriter.State.DECLARING);
            TensorInfo ia = w.declare("a", DType.F32, A_SHAPE);
            assertThat(ia.dataBegin()).isZero();
            assertThat(ia.dataEnd()).isEqualTo(128);
            w.declare("e", DType.BF16, new long[] {0});
            TensorInfo ib = w.declare("b", DType.I16, new long[] {1000});
            assertThat(ib.dataBegin()).isEqualTo(128);
            w.metadata(Map.of("format", "pt"));
            w.metadata(Map.of("step", "3"));
            w.writeHeader();
            assertThat(w.state()).isEqualTo(SafetensorsWriter.State.WRITING);
            assertThat(list(tmp)).singleElement().asString().startsWith(".s.safetensors.").endsWith(".tmp");
            byte[] ab = bytes(a);
            w.write("a", buf(java.util.Arrays.copyOfRange(ab, 0, 5)));
            assertThat(w.bytesRemaining("a")).isEqualTo(123);
            w.write("a", buf(java.util.Arrays.copyOfRange(ab, 5, 128)));
            byte[] bb = bytes(b);
            int at = 0;
            while (at < bb.length) { // "e" has no bytes: moving on to "b" needs no call for it
                int n = Math.min(bb.length - at, 1 + r.nextInt(300));
                ByteBuffer chunk = buf(java.util.Arrays.copyOfRange(bb, at, at + n));
                w.write("b", chunk);
                assertThat(chunk.hasRemaining()).isFalse();
                at += n;
            }
            assertThat(Files.exists(target)).isFalse(); // nothing at the target before close
        }
        assertThat(list(tmp)).containsExactly("s.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(target)) {
            assertThat(f.read("a")).isEqualTo(a);
            assertThat(f.read("e")).isEqualTo(e);
            assertThat(f.read("b")).isEqualTo(b);
            assertThat(f.metadata()).containsExactly(Map.entry("format", "pt"), Map.entry("step", "3"));
        }
    }

    @Test
    void illegalCallsNameTheStateAndChangeNothing() throws Exception {
        Path target = tmp.resolve("x.safetensors");
        SafetensorsWriter w = SafetensorsWriter.create(target);
        w.declare("a", DType.U8, new long[] {4});
        w.declare("b", DType.U8, new long[] {2});

        assertThatThrownBy(() -> w.write("a", buf(new byte[4]))).isInstanceOf(IllegalStateException.class)
                .hasMessage("cannot write tensor data in state DECLARING: call writeHeader() first");
        assertThatThrownBy(() -> w.declare("a", DType.U8, new long[] {1})).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'a' is already declared");
        assertThatThrownBy(() -> w.declare("__metadata__", DType.U8, new long[] {1}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("reserved");
        assertThatThrownBy(() -> w.declare("n", DType.U8, new long[] {-1})).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("negative dimension");
        assertThatThrownBy(() -> w.declare("o", DType.F64, new long[] {1L << 62})).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("64-bit");
        assertThat(w.state()).isEqualTo(SafetensorsWriter.State.DECLARING);

        w.writeHeader();
        assertThatThrownBy(w::writeHeader).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot write the header in state WRITING: the header is already written");
        assertThatThrownBy(() -> w.declare("c", DType.U8, new long[] {1})).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot declare a tensor in state WRITING: every tensor must be declared before "
                        + "writeHeader()");
        assertThatThrownBy(() -> w.metadata(Map.of("k", "v"))).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot set metadata in state WRITING");
        assertThatThrownBy(() -> w.write("zz", buf(new byte[1]))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'zz' was not declared");
        w.write("a", buf(new byte[] {1, 2}));
        assertThatThrownBy(() -> w.write("b", buf(new byte[2]))).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot write tensor 'b' in state WRITING: tensor 'a' (declared before it) has 2 "
                        + "of 4 bytes written; finish it first");
        assertThatThrownBy(() -> w.write("a", buf(new byte[3]))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("has 2 of 4 bytes left to write, got 3");
        assertThatThrownBy(() -> w.write("b", new HostTensor(DType.U8, new long[] {1, 2}, buf(new byte[2]))))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("was declared U8 [2]");
        // after all those rejected calls the writer still produces a correct file
        w.write("a", buf(new byte[] {3, 4}));
        assertThatThrownBy(() -> w.write("a", buf(new byte[1]))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("0 of 4 bytes left");
        w.write("b", buf(new byte[] {5, 6}));
        w.close();
        assertThat(w.state()).isEqualTo(SafetensorsWriter.State.CLOSED);
        w.close(); // idempotent
        assertThatThrownBy(() -> w.write("b", buf(new byte[0]))).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot write tensor data in state CLOSED");
        assertThatThrownBy(w::abort).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot abort in state CLOSED");
        try (SafetensorsFile f = SafetensorsFile.open(target)) {
            assertThat(bytes(f.read("a"))).containsExactly(1, 2, 3, 4);
            assertThat(bytes(f.read("b"))).containsExactly(5, 6);
        }
    }

    @Test
    void abortAndIncompleteCloseLeaveNoFileAndKeepAnExistingTarget() throws Exception {
        Path target = tmp.resolve("keep.safetensors");
        Files.writeString(target, "previous content");

        SafetensorsWriter w = SafetensorsWriter.create(target);
        w.declare("a", DType.U8, new long[] {4});
        w.writeHeader();
        w.write("a", buf(new byte[] {1}));
        w.abort();
        assertThat(w.state()).isEqualTo(SafetensorsWriter.State.ABORTED);
        w.abort(); // idempotent
        w.close(); // no-op once aborted
        assertThatThrownBy(() -> w.write("a", buf(new byte[1]))).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot write tensor data in state ABORTED");
        assertThat(list(tmp)).containsExactly("keep.safetensors");
        assertThat(Files.readString(target)).isEqualTo("previous content");

        SafetensorsWriter w2 = SafetensorsWriter.create(target);
        w2.declare("a", DType.U8, new long[] {4});
        w2.declare("b", DType.U8, new long[] {4});
        w2.writeHeader();
        w2.write("a", buf(new byte[4]));
        assertThatThrownBy(w2::close).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cannot close in state WRITING: tensor 'b' has 0 of 4 bytes written")
                .hasMessageContaining("nothing was written to " + target);
        assertThat(w2.state()).isEqualTo(SafetensorsWriter.State.ABORTED);
        assertThat(list(tmp)).containsExactly("keep.safetensors");
        assertThat(Files.readString(target)).isEqualTo("previous content");

        SafetensorsWriter w3 = SafetensorsWriter.create(target);
        w3.declare("a", DType.U8, new long[] {4});
        assertThatThrownBy(w3::close).isInstanceOf(IllegalStateException.class)
                .hasMessage("cannot close in state DECLARING: writeHeader() was never called, so no file was written");
        assertThat(list(tmp)).containsExactly("keep.safetensors");
    }

    @Test
    void exceptionInsideTryWithResourcesLeavesNothing() throws Exception {
        Path target = tmp.resolve("t.safetensors");
        RuntimeException boom = new RuntimeException("boom");
        assertThatThrownBy(() -> {
            try (SafetensorsWriter w = SafetensorsWriter.create(target)) {
                w.declare("a", DType.F32, A_SHAPE);
                w.writeHeader();
                w.write("a", buf(new byte[16]));
                throw boom;
            }
        }).isSameAs(boom).satisfies(e -> assertThat(e.getSuppressed()).singleElement()
                .isInstanceOf(IllegalStateException.class));
        assertThat(list(tmp)).isEmpty();
    }

    @Test
    void successfulCloseReplacesAnExistingTarget() throws Exception {
        Path target = tmp.resolve("r.safetensors");
        Files.writeString(target, "old");
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        m.put("x", Fixtures.randomTensor(new Random(1), DType.F16, new long[] {3, 3}));
        SafetensorsWriter.write(target, Map.of(), m);
        assertThat(list(tmp)).containsExactly("r.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(target)) {
            assertThat(f.read("x")).isEqualTo(m.get("x"));
        }
    }

    @Test
    void missingOutputDirectoryIsTyped() {
        Path target = tmp.resolve("no/such/dir/m.safetensors");
        assertThatThrownBy(() -> SafetensorsWriter.create(target)).isInstanceOf(SafetensorsFormatException.class)
                .hasMessageContaining("does not exist; create it first");
    }

    @Test
    void writesThroughHadoopFileSystems() throws Exception {
        Random r = new Random(9);
        LinkedHashMap<String, HostTensor> m = Fixtures.randomTensors(r, 6, 200);
        Configuration conf = new Configuration(false);
        conf.setBoolean("fs.file.impl.disable.cache", true);
        org.apache.hadoop.fs.Path checksummed = new org.apache.hadoop.fs.Path(tmp.resolve("local.safetensors").toUri());
        try (FileSystem fs = checksummed.getFileSystem(conf); RawLocalFileSystem raw = new RawLocalFileSystem()) {
            raw.initialize(java.net.URI.create("file:///"), conf);
            org.apache.hadoop.fs.Path rawPath = new org.apache.hadoop.fs.Path(tmp.resolve("raw.safetensors").toUri());
            for (Map.Entry<FileSystem, org.apache.hadoop.fs.Path> e : Map.of(fs, checksummed, raw, rawPath).entrySet()) {
                try (SafetensorsWriter w = SafetensorsWriter.create(e.getKey(), e.getValue())) {
                    SafetensorsWriter.writeAll(w, Map.of("format", "pt"), m);
                }
                try (SafetensorsFile f = SafetensorsFile.open(e.getKey(), e.getValue())) {
                    assertThat(f.metadata()).containsEntry("format", "pt");
                    for (Map.Entry<String, HostTensor> t : m.entrySet()) {
                        assertThat(f.read(t.getKey())).isEqualTo(t.getValue());
                    }
                }
                // abort on a Hadoop file system leaves nothing behind either
                org.apache.hadoop.fs.Path other = new org.apache.hadoop.fs.Path(e.getValue().getParent(), "aborted.safetensors");
                SafetensorsWriter w = SafetensorsWriter.create(e.getKey(), other);
                w.declare("a", DType.U8, new long[] {2});
                w.writeHeader();
                w.abort();
                assertThat(e.getKey().exists(other)).isFalse();
            }
        }
        // the hadoop-written files are byte-identical to a local write of the same tensors
        Path local = tmp.resolve("direct.safetensors");
        SafetensorsWriter.write(local, Map.of("format", "pt"), m);
        assertThat(Files.readAllBytes(tmp.resolve("raw.safetensors"))).isEqualTo(Files.readAllBytes(local));
        assertThat(Files.readAllBytes(tmp.resolve("local.safetensors"))).isEqualTo(Files.readAllBytes(local));
        assertThat(list(tmp)).noneMatch(n -> n.endsWith(".tmp") || n.contains("aborted"));
    }
}
