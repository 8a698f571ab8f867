package io.sparkprune.pipeline.safetensors;

import static io.sparkprune.pipeline.safetensors.Fixtures.bytes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link SafetensorsRangeWriter}: byte ranges written in shuffled order from several threads give
 * the file {@link SafetensorsWriter} streams for the same tensors (and whose data section is the
 * tensors' bytes concatenated); missing, surplus and out-of-range bytes are refused with nothing
 * published; finish and publish are separate steps, and a rollback removes a published file.
 */
class SafetensorsRangeWriterTest {
    @TempDir
    Path tmp;

    private static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    /** Name, dtype and shape of each tensor (offsets 0: the writer lays them out). */
    private static List<TensorInfo> infos(Map<String, HostTensor> tensors) {
        List<TensorInfo> res = new ArrayList<>();
        tensors.forEach((n, t) -> res.add(new TensorInfo(n, t.dtype(), t.shape(), 0,
                TensorInfo.byteLengthOf(t.dtype(), t.shape()))));
        return res;
    }

    private record Range(String tensor, long offset, byte[] bytes) {
    }

    @Test
    void shuffledRangesFromSeveralThreadsGiveTheStreamingWritersFile() throws Exception {
        Random r = new Random(90210);
        LinkedHashMap<String, HostTensor> tensors = Fixtures.randomTensors(r, 30, 3000);
        tensors.put("empty", Fixtures.randomTensor(r, DType.BF16, new long[] {0, 7}));
        Map<String, String> meta = Map.of("format", "pt", "note", "ranges");
        Path reference = tmp.resolve("reference").resolve("m.safetensors");
        Files.createDirectories(reference.getParent());
        SafetensorsWriter.write(reference, meta, tensors);

        // each tensor cut into 1..5 ranges at random places, all ranges shuffled
        List<Range> ranges = new ArrayList<>();
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
            byte[] b = bytes(e.getValue());
            data.writeBytes(b);
            int cuts = r.nextInt(5);
            List<Integer> at = new ArrayList<>(List.of(0, b.length));
            for (int i = 0; i < cuts; i++) {
                at.add(r.nextInt(b.length + 1));
            }
            Collections.sort(at);
            for (int i = 0; i + 1 < at.size(); i++) {
                if (at.get(i + 1) > at.get(i)) {
                    ranges.add(new Range(e.getKey(), at.get(i), java.util.Arrays.copyOfRange(b, at.get(i),
                            at.get(i + 1))));
                }
            }
        }
        Collections.shuffle(ranges, r);
        assertThat(ranges).hasSizeGreaterThan(tensors.size());

        Path target = tmp.resolve("m.safetensors");
        SafetensorsRangeWriter w = SafetensorsRangeWriter.create(target, meta, infos(tensors));
        assertThat(w.state()).isEqualTo(SafetensorsRangeWriter.State.OPEN);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int i = 0; i < ranges.size(); i++) {
                Range g = ranges.get(i);
                boolean direct = i % 2 == 0; // direct buffers (as a mapped input) and heap ones
                done.add(pool.submit(() -> {
                    ByteBuffer b = direct ? ByteBuffer.allocateDirect(g.bytes().length).put(g.bytes()).flip()
                            : ByteBuffer.wrap(g.bytes());
                    w.write(g.tensor(), g.offset(), b);
                    assertThat(b.hasRemaining()).isFalse();
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        } finally {
            pool.shutdown();
        }
        assertThat(Files.exists(target)).isFalse();
        w.finish();
        assertThat(w.state()).isEqualTo(SafetensorsRangeWriter.State.FINISHED);
        assertThat(Files.exists(target)).as("finished, not yet published").isFalse();
        w.publish();
        assertThat(w.state()).isEqualTo(SafetensorsRangeWriter.State.PUBLISHED);
        assertThat(list(tmp)).containsExactly("m.safetensors", "reference");

        assertThat(target).hasSameBinaryContentAs(reference);
        byte[] file = Files.readAllBytes(target);
        byte[] expectedData = data.toByteArray();
        assertThat(file.length).isEqualTo(w.fileLength());
        assertThat(java.util.Arrays.copyOfRange(file, (int) w.dataSectionOffset(), file.length))
                .isEqualTo(expectedData);
        assertThat(w.dataSectionOffset() % 8).isZero();
    }

    private SafetensorsRangeWriter twoTensors(Path target) {
        return SafetensorsRangeWriter.create(target, Map.of(), List.of(
                new TensorInfo("a", DType.F32, new long[] {2, 3}, 0, 24),
                new TensorInfo("b", DType.I8, new long[] {5}, 0, 5)));
    }

    @Test
    void aMissingByteFailsFinishAndPublishesNothing() throws Exception {
        Path target = tmp.resolve("x.safetensors");
        SafetensorsRangeWriter w = twoTensors(target);
        w.write("a", 0, ByteBuffer.allocate(24));
        w.write("b", 0, ByteBuffer.allocate(2));
        w.write("b", 3, ByteBuffer.allocate(2)); // byte 2 of b never written
        assertThatThrownBy(w::finish).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("tensor 'b' has 4 of 5 bytes written")
                .hasMessageContaining("x.safetensors");
        assertThat(w.state()).isEqualTo(SafetensorsRangeWriter.State.ABORTED);
        assertThat(list(tmp)).isEmpty();
    }

    @Test
    void outOfRangeAndSurplusBytesAreRefusedAndChangeNothing() throws Exception {
        Path target = tmp.resolve("x.safetensors");
        SafetensorsRangeWriter w = twoTensors(target);
        assertThatThrownBy(() -> w.write("a", 20, ByteBuffer.allocate(5))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("tensor 'a' F32 [2, 3] has 24 bytes, cannot write 5 bytes at offset 20");
        assertThatThrownBy(() -> w.write("a", -1, ByteBuffer.allocate(1))).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> w.write("c", 0, ByteBuffer.allocate(1))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("tensor 'c' is not in this file's header");
        w.write("b", 0, ByteBuffer.wrap(new byte[] {1, 2, 3, 4}));
        ByteBuffer again = ByteBuffer.wrap(new byte[] {9, 9});
        assertThatThrownBy(() -> w.write("b", 3, again)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("overlapping ranges");
        assertThat(again.remaining()).as("nothing consumed").isEqualTo(2);
        assertThat(w.state()).isEqualTo(SafetensorsRangeWriter.State.OPEN);
        // the refused writes left the tensors as they were: completing them succeeds
        w.write("b", 4, ByteBuffer.wrap(new byte[] {5}));
        w.write("a", 0, ByteBuffer.allocate(24));
        w.close();
        byte[] file = Files.readAllBytes(target);
        assertThat(java.util.Arrays.copyOfRange(file, file.length - 5, file.length)).containsExactly(1, 2, 3, 4, 5);
        try (SafetensorsFile f = SafetensorsFile.open(target)) {
            assertThat(f.tensors()).extracting(TensorInfo::name).containsExactly("a", "b");
        }
    }

    @Test
    void statesAreEnforcedAndDiscardRollsBackAPublishedFile() throws Exception {
        Path target = tmp.resolve("x.safetensors");
        SafetensorsRangeWriter w = twoTensors(target);
        assertThatThrownBy(w::publish).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("in state OPEN: call finish() first");
        w.write("a", 0, ByteBuffer.allocate(24));
        w.write("b", 0, ByteBuffer.allocate(5));
        w.finish();
        assertThatThrownBy(() -> w.write("b", 0, ByteBuffer.allocate(1))).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("in state FINISHED");
        w.publish();
        assertThat(list(tmp)).containsExactly("x.safetensors");
        assertThatThrownBy(w::abort).isInstanceOf(IllegalStateException.class).hasMessageContaining("PUBLISHED");
        w.close(); // no-op once published
        w.discard(true);
        assertThat(w.state()).isEqualTo(SafetensorsRangeWriter.State.ABORTED);
        assertThat(list(tmp)).isEmpty();

        SafetensorsRangeWriter aborted = twoTensors(tmp.resolve("y.safetensors"));
        aborted.write("a", 0, ByteBuffer.allocate(24));
        aborted.abort();
        assertThat(list(tmp)).isEmpty();
        assertThatThrownBy(() -> aborted.write("b", 0, ByteBuffer.allocate(5)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("in state ABORTED");
    }

    @Test
    void refusesDuplicateNamesAndAMissingDirectory() {
        TensorInfo a = new TensorInfo("a", DType.F32, new long[] {1}, 0, 4);
        assertThatThrownBy(() -> SafetensorsRangeWriter.create(tmp.resolve("d.safetensors"), Map.of(), List.of(a, a)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tensor 'a' is listed twice");
        assertThatThrownBy(() -> SafetensorsRangeWriter.create(tmp.resolve("no/d.safetensors"), Map.of(), List.of(a)))
                .isInstanceOf(SafetensorsFormatException.class).hasMessageContaining("does not exist");
    }
}
