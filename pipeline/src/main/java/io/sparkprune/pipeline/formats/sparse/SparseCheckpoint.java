package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Reads a {@code sparse} checkpoint (docs/formats.md, "sparse") back to dense tensors, bit for
 * bit. Opening checks the manifest against the stored tensors (every component present with its
 * dtype and shape, nothing unlisted); reading a tensor checks its indices, row pointers and mask
 * (in range, increasing, zero padding bits). Any inconsistency is a {@link FormatException}; a
 * truncated or malformed safetensors file is a
 * {@link io.sparkprune.pipeline.safetensors.SafetensorsFormatException}.
 */
public final class SparseCheckpoint implements DenseTensors, AutoCloseable {

    private final ShardedCheckpoint ckpt;
    private final SparseManifest manifest;
    private final Map<String, SparseManifest.Entry> entries = new LinkedHashMap<>();
    private final Map<String, List<SparseManifest.Component>> components = new LinkedHashMap<>();
    private final Map<String, List<SparseManifest.Component>> payloads = new LinkedHashMap<>();

    private SparseCheckpoint(ShardedCheckpoint ckpt, SparseManifest manifest) {
        this.ckpt = ckpt;
        this.manifest = manifest;
    }

    /**
     * @param dirOrFile a sparse checkpoint directory or one of its safetensors files
     * @return the open checkpoint
     * @throws FormatException when it is not a sparse checkpoint or the manifest disagrees with the stored tensors
     * @throws io.sparkprune.pipeline.safetensors.SafetensorsFormatException for a malformed safetensors file
     */
    public static SparseCheckpoint open(Path dirOrFile) {
        ShardedCheckpoint ckpt = ShardedCheckpoint.open(dirOrFile);
        boolean ok = false;
        try {
            SparseCheckpoint s = new SparseCheckpoint(ckpt, readManifest(ckpt).orElseThrow(() -> new FormatException(
                    ckpt.source(), "no '" + SparseManifest.METADATA_KEY + "' manifest in __metadata__: this is not a "
                    + "sparse checkpoint; use --from hf for a dense one")));
            s.validate();
            ok = true;
            return s;
        } finally {
            if (!ok) {
                ckpt.close();
            }
        }
    }

    /**
     * @param ckpt an open checkpoint
     * @return the manifest of its first file, when it has one
     * @throws FormatException when the manifest is present but malformed
     */
    public static Optional<SparseManifest> readManifest(ShardedCheckpoint ckpt) {
        if (ckpt.files().isEmpty()) {
            return Optional.empty();
        }
        String file = ckpt.files().get(0);
        String json = ckpt.shard(file).metadata().get(SparseManifest.METADATA_KEY);
        return json == null ? Optional.empty() : Optional.of(SparseManifest.parse(json, ckpt.source() + "/" + file));
    }

    private void validate() {
        Set<String> seen = new HashSet<>();
        for (SparseManifest.Entry e : manifest.tensors()) {
            if (entries.put(e.name(), e) != null) {
                throw new FormatException(ckpt.source(), "manifest lists tensor '" + e.name() + "' twice; the file is "
                        + "corrupt: re-create it");
            }
            long count = 0;
            if (e.encoding() instanceof SparseEncoding.Bsr) {
                count = stored(e.name() + ".col_indices").shape()[0];
            } else if (e.encoding() instanceof SparseEncoding.Bitmask) {
                count = stored(e.name() + ".values").shape()[0];
            }
            List<SparseManifest.Component> cs = SparseManifest.components(e, count);
            for (SparseManifest.Component c : cs) {
                TensorInfo info = stored(c.name());
                if (info.dtype() != c.dtype() || !Arrays.equals(info.shape(), c.shape())) {
                    throw new FormatException(ckpt.source() + ": '" + c.name() + "'", "stored as " + info.dtype() + " "
                            + Arrays.toString(info.shape()) + " but the manifest entry of '" + e.name() + "' ("
                            + e.encoding().spec() + ", " + e.dtype() + " " + Arrays.toString(e.shape()) + ") needs "
                            + c.dtype() + " " + Arrays.toString(c.shape()) + "; the file is corrupt: re-create it");
                }
                seen.add(c.name());
            }
            components.put(e.name(), cs);
            payloads.put(e.name(), SparseManifest.payloads(e, count));
        }
        for (String n : ckpt.tensorNames()) {
            if (!seen.contains(n)) {
                throw new FormatException(ckpt.source() + ": '" + n + "'", "stored but not in the manifest; the file is "
                        + "corrupt or was edited: re-create it");
            }
        }
    }

    private TensorInfo stored(String name) {
        if (!ckpt.contains(name)) {
            throw new FormatException(ckpt.source() + ": '" + name + "'", "missing: the manifest needs it; the "
                    + "checkpoint is incomplete or corrupt: re-create it");
        }
        return ckpt.info(name);
    }

    /** @return the manifest */
    public SparseManifest manifest() {
        return manifest;
    }

    /**
     * @param name original tensor name
     * @return its encoding
     */
    public SparseEncoding encoding(String name) {
        return entry(name).encoding();
    }

    /**
     * @param name original tensor name
     * @return bytes of its stored components
     */
    public long storedBytes(String name) {
        entry(name);
        return components.get(name).stream().mapToLong(SparseManifest.Component::bytes).sum();
    }

    /**
     * @param name original tensor name
     * @return bytes of the dense tensor
     */
    public long denseBytes(String name) {
        return entry(name).denseBytes();
    }

    private SparseManifest.Entry entry(String name) {
        SparseManifest.Entry e = entries.get(name);
        if (e == null) {
            throw new IllegalArgumentException(ckpt.source() + ": no tensor '" + name + "'");
        }
        return e;
    }

    @Override
    public String source() {
        return ckpt.source();
    }

    @Override
    public List<String> names() {
        return List.copyOf(entries.keySet());
    }

    @Override
    public DType dtype(String name) {
        return entry(name).dtype();
    }

    @Override
    public long[] shape(String name) {
        return entry(name).shape();
    }

    /**
     * @param name original tensor name
     * @return the dense tensor, bit-identical to what was written
     * @throws FormatException when the stored components are inconsistent
     */
    @Override
    public HostTensor read(String name) {
        SparseManifest.Entry e = entry(name);
        if (e.encoding() instanceof SparseEncoding.Dense) {
            return ckpt.read(name);
        }
        if (e.denseBytes() > Integer.MAX_VALUE - 8) {
            throw new FormatException(source() + ": '" + name + "'", "over 2 GiB dense; reading it whole is not "
                    + "supported");
        }
        String where = source() + ": '" + name + "'";
        if (e.quantization().isPresent()) {
            return HostTensor.fromFloats(e.dtype(), e.shape(), quantized(name).orElseThrow().dequantize());
        }
        int el = e.dtype().byteSize();
        List<SparseManifest.Component> cs = payloads.get(name);
        byte[] d;
        if (e.encoding() instanceof SparseEncoding.NofM nm) {
            d = SparseCodecs.nmDecode(where, raw(cs.get(0)), raw(cs.get(1)), e.rows(), e.cols(), el, nm);
        } else if (e.encoding() instanceof SparseEncoding.Bsr b) {
            d = SparseCodecs.bsrDecode(where, raw(cs.get(0)), raw(cs.get(1)), raw(cs.get(2)), e.rows(), e.cols(), el, b);
        } else {
            d = SparseCodecs.bitmaskDecode(where, raw(cs.get(0)), raw(cs.get(1)), raw(cs.get(2)), e.rows(), e.cols(), el);
        }
        return new HostTensor(e.dtype(), e.shape(), ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN));
    }

    /**
     * @param name original tensor name
     * @return for a quantized N:M tensor, its full codes ({@code rows × cols}, unstored entries
     *     equal to their zero point), scales (widened to fp32 from the stored dtype) and zero
     *     points; empty for any other tensor
     * @throws FormatException when the stored components are inconsistent
     */
    public Optional<QuantizedWeights> quantized(String name) {
        SparseManifest.Entry e = entry(name);
        if (e.quantization().isEmpty()) {
            return Optional.empty();
        }
        List<SparseManifest.Component> cs = payloads.get(name);
        return Optional.of(QuantizedNm.decode(source() + ": '" + name + "'", e.quantization().get(),
                (SparseEncoding.NofM) e.encoding(), e.dtype(), e.rows(), e.cols(), raw(cs.get(0)), raw(cs.get(1)),
                ckpt.read(cs.get(2).name()), cs.size() > 3 ? raw(cs.get(3)) : null));
    }

    /**
     * Rows {@code [from, to)} of one row-shaped payload of a tensor, decoded from its payload codec:
     * for a deflated payload only the chunks holding those rows are inflated (docs/formats.md,
     * "Payload codec").
     *
     * @param name original tensor name
     * @param payload a payload suffix of its encoding whose first dimension is the tensor's rows:
     *     {@code codes}, {@code indices}, {@code mask} (deflatable) or {@code values}, {@code scales},
     *     {@code zero_points} of N:M
     * @param from first row, {@code 0 ≤ from ≤ to}
     * @param to end row (exclusive), {@code ≤ rows}
     * @return the raw payload rows, {@code (to − from) × rowBytes} bytes as codec {@code none} stores them
     * @throws IllegalArgumentException for an unknown tensor or payload, or rows out of range
     * @throws FormatException when the stored payload is corrupt
     */
    public byte[] payloadRows(String name, String payload, int from, int to) {
        SparseManifest.Entry e = entry(name);
        SparseManifest.Component c = payloads.get(name).stream()
                .filter(x -> x.name().equals(name + "." + payload) && x.shape().length == 2).findFirst()
                .orElseThrow(() -> new IllegalArgumentException(source() + ": '" + name + "' has no row payload '"
                        + payload + "'"));
        int rows = (int) c.shape()[0];
        if (from < 0 || to < from || to > rows) {
            throw new IllegalArgumentException(source() + ": '" + name + "': rows [" + from + ", " + to + ") of " + rows);
        }
        int rowBytes = (int) (c.shape()[1] * c.dtype().byteSize());
        Optional<SparseManifest.Deflated> d = e.deflated(payload);
        if (d.isPresent()) {
            return DeflatedPayload.inflateRows(deflatedWhere(c),
                    SparseWriter.bytes(ckpt.read(c.name() + ".deflate")), SparseWriter.bytes(ckpt.read(c.name() + ".chunks")),
                    rows, rowBytes, d.get().chunkRows(), from, to);
        }
        byte[] all = raw(c);
        return Arrays.copyOfRange(all, from * rowBytes, to * rowBytes);
    }

    /**
     * @param name original tensor name
     * @return how it is stored, for reports: the encoding's spec, plus e.g. {@code " int4 asymmetric group 128"}
     *     for the quantized N:M variant, plus {@code " deflate"} when its payloads use the deflate codec
     */
    public String storage(String name) {
        SparseManifest.Entry e = entry(name);
        return e.encoding().spec() + e.quantization().map(q -> " " + q.describe()).orElse("")
                + (e.codec() == PayloadCodec.DEFLATE ? " deflate" : "");
    }

    /** @return "dir/file: 'name.payload.deflate'" for messages about a deflated payload */
    private String deflatedWhere(SparseManifest.Component c) {
        String t = c.name() + ".deflate";
        return source() + "/" + ckpt.fileOf(t) + ": '" + t + "'";
    }

    /** @return a payload's raw bytes, inflated when it is stored deflated */
    private byte[] raw(SparseManifest.Component c) {
        int dot = c.name().lastIndexOf('.');
        String base = c.name().substring(0, dot);
        SparseManifest.Entry e = entries.get(base);
        Optional<SparseManifest.Deflated> d = e == null ? Optional.empty() : e.deflated(c.name().substring(dot + 1));
        if (d.isPresent()) {
            return DeflatedPayload.inflate(deflatedWhere(c),
                    SparseWriter.bytes(ckpt.read(c.name() + ".deflate")), SparseWriter.bytes(ckpt.read(c.name() + ".chunks")),
                    (int) c.shape()[0], (int) c.shape()[1], d.get().chunkRows());
        }
        return SparseWriter.bytes(ckpt.read(c.name()));
    }

    /** @return the original {@code __metadata__} recorded in the manifest */
    public Map<String, String> originalMetadata() {
        return manifest.metadata();
    }

    @Override
    public void close() {
        ckpt.close();
    }
}
