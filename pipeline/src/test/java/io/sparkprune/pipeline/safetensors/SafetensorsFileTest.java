package io.sparkprune.pipeline.safetensors;

import static io.sparkprune.pipeline.safetensors.Fixtures.bytes;
import static io.sparkprune.pipeline.safetensors.Fixtures.le;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Reader back ends: windowed mmap (stitching across windows), Hadoop FileSystem, files > 2 GiB. */
class SafetensorsFileTest {
    @TempDir
    Path tmp;

    /** A file of mixed tensors, several KiB each, so 4 KiB windows split many of them. */
    private LinkedHashMap<String, HostTensor> sample(Random r) {
        LinkedHashMap<String, HostTensor> m = new LinkedHashMap<>();
        m.put("embed", Fixtures.randomTensor(r, DType.BF16, new long[] {37, 129}));
        m.put("q_proj", Fixtures.randomTensor(r, DType.F32, new long[] {33, 65}));
        m.put("norm", Fixtures.randomTensor(r, DType.F16, new long[] {999}));
        m.put("ids", Fixtures.randomTensor(r, DType.I64, new long[] {5, 3, 41}));
        m.put("empty", Fixtures.randomTensor(r, DType.F64, new long[] {0, 7}));
        m.put("scalar", Fixtures.randomTensor(r, DType.F64, new long[] {}));
        m.put("mask", Fixtures.randomTensor(r, DType.BOOL, new long[] {3, 1111}));
        m.put("big", Fixtures.randomTensor(r, DType.I8, new long[] {10000}));
        return m;
    }

    /** Reads everything through {@code f} and compares with the original tensors, bytes exactly. */
    private static void checkAll(SafetensorsFile f, Map<String, HostTensor> expected, Random r) {
        assertThat(f.tensors()).extracting(TensorInfo::name).containsExactlyElementsOf(expected.keySet());
        for (Map.Entry<String, HostTensor> e : expected.entrySet()) {
            String name = e.getKey();
            HostTensor want = e.getValue();
            byte[] wantBytes = bytes(want);
            HostTensor got = f.read(name);
            assertThat(got).as(name).isEqualTo(want);
            assertThat(got.data().isReadOnly()).isTrue();
            assertThat(got.data().order()).isEqualTo(java.nio.ByteOrder.LITTLE_ENDIAN);
            TensorInfo info = f.info(name);
            if (info.rank() > 0) {
                for (int k = 0; k < 20; k++) {
                    long rows = info.rows();
                    long start = r.nextInt((int) rows + 1);
                    long count = r.nextInt((int) (rows - start) + 1);
                    HostTensor part = f.readRows(name, start, count);
                    long[] shape = want.shape();
                    shape[0] = count;
                    assertThat(part.shape()).isEqualTo(shape);
                    int rb = (int) info.rowBytes();
                    assertThat(bytes(part)).as("%s rows [%d, +%d)", name, start, count)
                            .isEqualTo(Arrays.copyOfRange(wantBytes, (int) start * rb, (int) (start + count) * rb));
                }
            }
            for (int k = 0; k < 20; k++) {
                int off = r.nextInt(wantBytes.length + 1);
                int len = r.nextInt(wantBytes.length - off + 1);
                assertThat(bytes(f.readBytes(name, off, len))).isEqualTo(Arrays.copyOfRange(wantBytes, off, off + len));
            }
        }
    }

    @ParameterizedTest(name = "window {0} bytes")
    @ValueSource(ints = {64, 100, 4096, 65536, SafetensorsFile.DEFAULT_WINDOW_BYTES})
    void windowedMmapMatchesOriginal(int window) {
        Random r = new Random(window);
        LinkedHashMap<String, HostTensor> t = sample(r);
        Path p = Fixtures.writeFile(tmp, "m.safetensors", Map.of("format", "pt"), t);
        try (SafetensorsFile f = SafetensorsFile.open(p, window)) {
            assertThat(f.metadata()).containsEntry("format", "pt");
            checkAll(f, t, r);
        }
    }

    @Test
    void straddlingReadsAreStitchedAndInWindowReadsAreViews() {
        Random r = new Random(7);
        LinkedHashMap<String, HostTensor> t = sample(r);
        Path p = Fixtures.writeFile(tmp, "m.safetensors", Map.of(), t);
        try (SafetensorsFile f = SafetensorsFile.open(p, 4096)) {
            long base = f.header().dataSectionOffset() + f.info("big").dataBegin();
            // a range inside one window: zero-copy (no guarded allocation); across a boundary: one copy
            long firstBoundary = (base / 4096 + 1) * 4096;
            int inside = (int) (firstBoundary - base) - 16;
            long before = ReadBuffers.ALLOCATIONS.sum();
            ByteBuffer view = f.readBytes("big", 0, Math.min(inside, 16));
            assertThat(ReadBuffers.ALLOCATIONS.sum()).isEqualTo(before);
            ByteBuffer stitched = f.readBytes("big", firstBoundary - base - 8, 16);
            assertThat(ReadBuffers.ALLOCATIONS.sum()).isEqualTo(before + 1);
            byte[] want = bytes(t.get("big"));
            assertThat(bytes(view)).isEqualTo(Arrays.copyOfRange(want, 0, Math.min(inside, 16)));
            int o = (int) (firstBoundary - base - 8);
            assertThat(bytes(stitched)).isEqualTo(Arrays.copyOfRange(want, o, o + 16));
        }
    }

    @Test
    void hadoopFileUriAndRawLocalMatchMmap() throws Exception {
        Random r = new Random(11);
        LinkedHashMap<String, HostTensor> t = sample(r);
        Path p = Fixtures.writeFile(tmp, "h.safetensors", Map.of("k", "v"), t);
        Configuration conf = new Configuration(false);
        conf.setBoolean("fs.file.impl.disable.cache", true);
        String uri = p.toUri().toString();
        assertThat(uri).startsWith("file:");

        // through the checksummed LocalFileSystem for file: URIs
        try (FileSystem fs = new org.apache.hadoop.fs.Path(uri).getFileSystem(conf);
                SafetensorsFile f = SafetensorsFile.open(fs, new org.apache.hadoop.fs.Path(uri))) {
            assertThat(fs).isInstanceOf(org.apache.hadoop.fs.LocalFileSystem.class);
            assertThat(f.source()).startsWith("file:").endsWith("h.safetensors");
            assertThat(f.metadata()).containsEntry("k", "v");
            checkAll(f, t, r);
        }
        // through RawLocalFileSystem, and compared read-for-read with mmap
        try (RawLocalFileSystem raw = new RawLocalFileSystem()) {
            raw.initialize(java.net.URI.create("file:///"), conf);
            try (SafetensorsFile h = SafetensorsFile.open(raw, new org.apache.hadoop.fs.Path(uri));
                    SafetensorsFile m = SafetensorsFile.open(p, 4096)) {
                assertThat(h.tensors()).isEqualTo(m.tensors());
                assertThat(h.header().headerLength()).isEqualTo(m.header().headerLength());
                for (TensorInfo i : m.tensors()) {
                    assertThat(h.read(i.name())).isEqualTo(m.read(i.name()));
                    if (i.rank() > 0 && i.rows() > 2) {
                        assertThat(h.readRows(i.name(), 1, i.rows() - 2)).isEqualTo(m.readRows(i.name(), 1, i.rows() - 2));
                    }
                }
                checkAll(h, t, r);
            }
        }
        // open(String, conf): plain path and file: URI take the mmap path, with the same results
        try (SafetensorsFile a = SafetensorsFile.open(p.toString(), conf);
                SafetensorsFile b = SafetensorsFile.open(uri, conf)) {
            assertThat(a.source()).isEqualTo(p.toString());
            assertThat(b.source()).isEqualTo(p.toString());
            checkAll(a, t, r);
            checkAll(b, t, r);
        }
    }

    @Test
    void hadoopMissingAndTruncatedFilesAreTyped() throws Exception {
        Random r = new Random(5);
        LinkedHashMap<String, HostTensor> t = sample(r);
        Path p = Fixtures.writeFile(tmp, "t.safetensors", Map.of(), t);
        byte[] all = Files.readAllBytes(p);
        try (RawLocalFileSystem raw = new RawLocalFileSystem()) {
            raw.initialize(java.net.URI.create("file:///"), new Configuration(false));
            org.apache.hadoop.fs.Path hp = new org.apache.hadoop.fs.Path(p.toUri());
            assertThatThrownBy(() -> SafetensorsFile.open(raw, new org.apache.hadoop.fs.Path(tmp.resolve("no").toUri())))
                    .isInstanceOf(SafetensorsFormatException.class).hasMessageContaining("file not found");

            // truncated before open: caught by header validation against the file length
            Files.write(p, Arrays.copyOf(all, all.length - 3));
            assertThatThrownBy(() -> SafetensorsFile.open(raw, hp)).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageContaining("t.safetensors").hasMessageContaining("run past the end of the data section");

            // truncated after open: the positioned read hits EOF, reported as a typed error
            Files.write(p, all);
            try (SafetensorsFile f = SafetensorsFile.open(raw, hp)) {
                try (RandomAccessFile raf = new RandomAccessFile(p.toFile(), "rw")) {
                    raf.setLength(f.header().dataSectionOffset() + 10);
                }
                assertThatThrownBy(() -> f.read("big")).isInstanceOf(SafetensorsFormatException.class)
                        .hasMessageContaining("t.safetensors").hasMessageContaining("'big'")
                        .hasMessageContaining("ended early");
            }
        }
    }

    @Test
    void mmapFileTruncatedAfterOpenGivesTypedError() throws Exception {
        LinkedHashMap<String, HostTensor> t = sample(new Random(3));
        Path p = Fixtures.writeFile(tmp, "tr.safetensors", Map.of(), t);
        try (SafetensorsFile f = SafetensorsFile.open(p, 4096)) {
            f.read("embed"); // maps the first windows while the file is whole
            try (RandomAccessFile raf = new RandomAccessFile(p.toFile(), "rw")) {
                raf.setLength(f.header().dataSectionOffset() + 10);
            }
            // "big" lies in windows not mapped yet, past the new end: refused before mapping
            assertThatThrownBy(() -> f.read("big")).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageContaining("tr.safetensors").hasMessageContaining("'big'")
                    .hasMessageContaining("ended early");
            // "embed" spans windows mapped before the truncation: refused before touching the lost pages
            assertThatThrownBy(() -> f.read("embed")).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageContaining("'embed'").hasMessageContaining("ended early");
        }
    }

    @Test
    void closedFileRejectsReads() {
        Path p = Fixtures.writeFile(tmp, "c.safetensors", Map.of(), sample(new Random(1)));
        SafetensorsFile f = SafetensorsFile.open(p);
        f.close();
        f.close(); // idempotent
        assertThatThrownBy(() -> f.read("norm")).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
    }

    /**
     * A real file over 2 GiB, made sparse with setLength so it costs no disk: a BF16 tensor of
     * 2.5 GiB and a small tensor after it at an offset past 2^31. Reads cross the 1 GiB mapping
     * windows and land past 2 GiB, through mmap and through Hadoop positioned reads.
     */
    @Test
    void tensorsLargerThanTwoGiBReadByRows() throws Exception {
        long rows = 40960;
        long cols = 32768;
        long bigBytes = rows * cols * 2; // 2.5 GiB
        assumeTrue(tmp.toFile().getUsableSpace() > 4 * bigBytes, "not enough disk even for a sparse 2.5 GiB file");
        String header = "{\"big\":{\"dtype\":\"BF16\",\"shape\":[" + rows + "," + cols + "],\"data_offsets\":[0,"
                + bigBytes + "]},\"tail\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + bigBytes + ","
                + (bigBytes + 8) + "]}}";
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        long data = 8 + h.length;
        Path p = tmp.resolve("huge.safetensors");
        long rowBytes = cols * 2;
        // rows whose bytes straddle the 1 GiB and 2 GiB absolute file positions
        long row1g = ((1L << 30) - data) / rowBytes;
        long row2g = ((1L << 31) - data) / rowBytes;
        Function<Long, Byte> marker = row -> (byte) (row * 31 + 7);
        try (RandomAccessFile raf = new RandomAccessFile(p.toFile(), "rw")) {
            raf.write(le(h.length, 8));
            raf.write(h);
            raf.setLength(data + bigBytes + 8);
            for (long row : new long[] {row1g - 1, row1g, row1g + 1, row2g, row2g + 1, rows - 1}) {
                byte[] b = new byte[(int) rowBytes];
                Arrays.fill(b, marker.apply(row));
                raf.seek(data + row * rowBytes);
                raf.write(b);
            }
            raf.seek(data + bigBytes);
            raf.write(le(Float.floatToRawIntBits(1.5f), 4));
            raf.write(le(Float.floatToRawIntBits(-2f), 4));
        }
        RawLocalFileSystem raw = new RawLocalFileSystem();
        raw.initialize(java.net.URI.create("file:///"), new Configuration(false));
        try (raw; SafetensorsFile m = SafetensorsFile.open(p);
                SafetensorsFile hd = SafetensorsFile.open(raw, new org.apache.hadoop.fs.Path(p.toUri()))) {
            for (SafetensorsFile f : new SafetensorsFile[] {m, hd}) {
                TensorInfo big = f.info("big");
                assertThat(big.byteLength()).isEqualTo(bigBytes);
                assertThat(big.rowBytes()).isEqualTo(rowBytes);
                assertThatThrownBy(() -> f.read("big")).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("readRows");
                assertThat(f.read("tail").toFloatArray()).containsExactly(1.5f, -2f);
                for (long start : new long[] {row1g - 1, row2g - 1, rows - 3}) {
                    HostTensor part = f.readRows("big", start, 3);
                    assertThat(part.shape()).containsExactly(3, cols);
                    byte[] got = bytes(part);
                    for (int k = 0; k < 3; k++) {
                        long row = start + k;
                        boolean marked = row == row1g - 1 || row == row1g || row == row1g + 1 || row == row2g
                                || row == row2g + 1 || row == rows - 1;
                        byte want = marked ? marker.apply(row) : 0;
                        byte[] rowGot = Arrays.copyOfRange(got, (int) (k * rowBytes), (int) ((k + 1) * rowBytes));
                        byte[] rowWant = new byte[(int) rowBytes];
                        Arrays.fill(rowWant, want);
                        assertThat(rowGot).as("row %d via %s", row, f.source()).isEqualTo(rowWant);
                    }
                }
                ByteBuffer edge = f.readBytes("big", (1L << 31) - data - 4, 8); // spans absolute 2^31
                assertThat(edge.remaining()).isEqualTo(8);
            }
        }
    }
}
