package io.sparkprune.pipeline.formats.sparse;

import io.sparkprune.calibration.quant.QuantizedWeights;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.formats.AtomicDirectory;
import io.sparkprune.pipeline.formats.DenseTensors;
import io.sparkprune.pipeline.formats.FormatException;
import io.sparkprune.pipeline.formats.SideFiles;
import io.sparkprune.pipeline.recipe.TensorSelector;
import io.sparkprune.pipeline.safetensors.SafetensorsWriter;
import io.sparkprune.pipeline.safetensors.ShardedCheckpointWriter;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Function;
import java.util.Set;

/**
 * Writes a {@code sparse} checkpoint directory (docs/formats.md, "sparse"): the side files byte
 * for byte, and the tensors in safetensors files ({@code model.safetensors}, or shards plus an
 * index) whose {@code __metadata__} holds the {@link SparseManifest}.
 *
 * <p>Which tensors are compressed: 2-D floating-point tensors selected by the options' targets.
 * With a forced encoding every target is stored with it — an N:M target that is not N:M is refused
 * with {@link io.sparkprune.pipeline.formats.PatternViolationException}, never silently pruned;
 * a shape the encoding does not tile is a {@link FormatException}. Without one, each target gets
 * 2:4, else 4:8, when the data conforms (the structure hardware can use, even where a bitmask
 * would be a little smaller); otherwise the encoding with the fewest bytes among BSR with square
 * tiles 64, 32, 16, 8, 4 (when they tile the shape) and bitmask; or dense when none saves bytes. Every other tensor is stored dense under its own name.
 *
 * <p>Two passes: the first reads each tensor to choose its encoding and count stored tiles or
 * entries (the safetensors header needs every size first), the second encodes and writes it. One
 * tensor is held in memory at a time. All-or-nothing ({@link AtomicDirectory}).
 */
public final class SparseWriter {

    /** Square BSR tiles tried by automatic detection, largest first. */
    static final int[] AUTO_TILES = {64, 32, 16, 8, 4};

    private SparseWriter() {
    }

    /**
     * @param targets which tensors may be compressed (2-D floating-point ones only)
     * @param encoding the encoding forced on every target, or empty for automatic detection
     * @param maxShardBytes largest safetensors file before sharding
     * @param codec how the integer payloads (N:M indices, quantized codes, bitmask) are stored:
     *     raw ({@link PayloadCodec#NONE}) or in deflated row chunks ({@link PayloadCodec#DEFLATE})
     */
    public record Options(TensorSelector targets, Optional<SparseEncoding> encoding, long maxShardBytes,
                          PayloadCodec codec) {
        /** @throws NullPointerException for a null argument */
        public Options {
            Objects.requireNonNull(targets, "targets");
            Objects.requireNonNull(encoding, "encoding");
            Objects.requireNonNull(codec, "codec");
        }

        /**
         * Options with raw payloads (codec {@code none}).
         *
         * @param targets which tensors may be compressed (2-D floating-point ones only)
         * @param encoding the encoding forced on every target, or empty for automatic detection
         * @param maxShardBytes largest safetensors file before sharding
         */
        public Options(TensorSelector targets, Optional<SparseEncoding> encoding, long maxShardBytes) {
            this(targets, encoding, maxShardBytes, PayloadCodec.NONE);
        }

        /**
         * @param c the payload codec
         * @return these options with codec {@code c}
         */
        public Options withCodec(PayloadCodec c) {
            return new Options(targets, encoding, maxShardBytes, c);
        }

        /** @return every 2-D tensor of a numbered block except embeddings and the LM head, automatic encoding, 5 GB shards */
        public static Options defaults() {
            return new Options(TensorSelector.defaults(), Optional.empty(), 5_000_000_000L);
        }
    }

    /**
     * What was written for one tensor.
     *
     * @param name original name
     * @param encoding how it is stored
     * @param denseBytes bytes of the dense tensor
     * @param storedBytes bytes of its stored components
     */
    public record TensorReport(String name, SparseEncoding encoding, long denseBytes, long storedBytes) {
    }

    /**
     * The first pass's decision for one tensor.
     *
     * @param entry its manifest entry (name, encoding, dtype, shape)
     * @param count stored BSR tiles or bitmask entries (0 for the other encodings); with the entry it
     *     fixes every component's shape ({@link SparseManifest#components})
     */
    public record Plan(SparseManifest.Entry entry, long count) {
    }

    /**
     * One stored safetensors tensor of the container, in file order.
     *
     * @param plan index of its tensor's plan
     * @param part its index among that tensor's components
     * @param component name, dtype, shape
     */
    public record StoredComponent(int plan, int part, SparseManifest.Component component) {
    }

    /**
     * @param src the dense tensors, in the order to keep
     * @param sideFiles config.json and tokenizer files, copied byte for byte
     * @param metadata the source's {@code __metadata__}, kept in the manifest and restored on decompression
     * @param options targets, encoding, shard size
     * @param target output directory; must not exist
     * @return per tensor: encoding and bytes
     * @throws io.sparkprune.pipeline.formats.PatternViolationException when a target is not N:M under a forced N:M
     * @throws FormatException when a forced encoding does not tile a target's shape, or stored names collide
     * @throws io.sparkprune.kernels.InvalidInputException when the target exists or the source is malformed
     * @throws java.io.UncheckedIOException on I/O failure (nothing is left behind)
     */
    public static List<TensorReport> write(DenseTensors src, Map<String, byte[]> sideFiles, Map<String, String> metadata,
                                           Options options, Path target) {
        return write(src, sideFiles, metadata, options, name -> Optional.empty(), target);
    }

    /**
     * As {@link #write(DenseTensors, Map, Map, Options, Path)}, with the quantized N:M variant
     * (docs/formats.md): under a forced N:M encoding, a target for which {@code quantized} gives
     * codes and grids (4 or 8 bits) is stored as kept codes + in-group indices + scales (in the
     * tensor's dtype) + zero points (asymmetric), and its dense values are not read. Decompression
     * gives {@code dtype(scale · (code − zero))} with the scale as stored, so the codes' scales
     * should already be representable in the tensor's dtype for a bit-exact round trip. Under any
     * other encoding the provider is not consulted and values are stored.
     *
     * @param src the dense tensors, in the order to keep
     * @param sideFiles config.json and tokenizer files, copied byte for byte
     * @param metadata the source's {@code __metadata__}
     * @param options targets, encoding, shard size
     * @param quantized tensor name → its codes and grids (rows × cols as the tensor), or empty; called
     *     once per quantized target to plan and once to write, one tensor held at a time
     * @param target output directory; must not exist
     * @return per tensor: encoding and bytes
     * @throws io.sparkprune.pipeline.formats.PatternViolationException when a target's values (or
     *     codes) are not N:M under a forced N:M
     * @throws FormatException as the other overload, or when codes do not match a tensor's shape or
     *     have bits other than 4 and 8
     * @throws java.io.UncheckedIOException on I/O failure (nothing is left behind)
     */
    public static List<TensorReport> write(DenseTensors src, Map<String, byte[]> sideFiles, Map<String, String> metadata,
                                           Options options, Function<String, Optional<QuantizedWeights>> quantized,
                                           Path target) {
        Objects.requireNonNull(quantized, "quantized");
        List<Plan> plans = new ArrayList<>();
        for (String name : src.names()) {
            plans.add(plan(src, name, options, quantized));
        }
        List<TensorReport> reports = reports(src.source(), plans);
        Map<String, String> md = containerMetadata(metadata, plans);
        AtomicDirectory.write(target, tmp -> {
            SideFiles.write(tmp, sideFiles);
            try (ShardedCheckpointWriter w = ShardedCheckpointWriter.create(tmp, options.maxShardBytes())) {
                boolean ok = false;
                try {
                    for (Plan p : plans) {
                        for (SparseManifest.Component c : SparseManifest.components(p.entry(), p.count())) {
                            w.declare(c.name(), c.dtype(), c.shape());
                        }
                    }
                    w.metadata(md);
                    w.planShards();
                    for (Plan p : plans) {
                        writeTensor(w, src, p, quantized);
                    }
                    ok = true;
                } finally {
                    if (!ok) {
                        w.abort();
                    }
                }
            }
        });
        return reports;
    }

    /**
     * The first pass for one unquantized tensor: reads it (when it is a compressible target) and
     * chooses its encoding as {@link #write(DenseTensors, Map, Map, Options, Path)} does; with the
     * {@code deflate} codec it also encodes and deflates the integer payloads to record their sizes.
     *
     * @param src the dense tensors
     * @param name a name of {@code src}
     * @param options targets, encoding (the shard size is not used)
     * @return the encoding and stored count
     * @throws io.sparkprune.pipeline.formats.PatternViolationException when the target is not N:M under a forced N:M
     * @throws FormatException when a forced encoding does not tile its shape, or it is over 2 GiB
     * @throws io.sparkprune.kernels.InvalidInputException when the stored data is malformed
     */
    public static Plan plan(DenseTensors src, String name, Options options) {
        return plan(src, name, options, n -> Optional.empty());
    }

    /**
     * The per-tensor reports, after checking that no stored name collides with another.
     *
     * @param source the input, for messages
     * @param plans every tensor's plan, in order
     * @return per tensor: encoding, dense and stored bytes
     * @throws FormatException when two stored names collide
     */
    public static List<TensorReport> reports(String source, List<Plan> plans) {
        Set<String> stored = new HashSet<>();
        List<TensorReport> reports = new ArrayList<>();
        for (Plan p : plans) {
            long bytes = 0;
            for (SparseManifest.Component c : SparseManifest.components(p.entry(), p.count())) {
                if (!stored.add(c.name())) {
                    throw new FormatException(source, "stored tensor name '" + c.name() + "' (of '"
                            + p.entry().name() + "') collides with another tensor; rename the tensor or store it dense");
                }
                bytes += c.bytes();
            }
            reports.add(new TensorReport(p.entry().name(), p.entry().encoding(), p.entry().denseBytes(), bytes));
        }
        return reports;
    }

    /**
     * @param metadata the source's {@code __metadata__}
     * @param plans every tensor's plan, in order
     * @return the {@code __metadata__} of every container file: {@code format} and the manifest JSON
     */
    public static Map<String, String> containerMetadata(Map<String, String> metadata, List<Plan> plans) {
        SparseManifest manifest = new SparseManifest(new LinkedHashMap<>(metadata),
                plans.stream().map(Plan::entry).toList());
        Map<String, String> md = new LinkedHashMap<>();
        md.put("format", SparseManifest.FORMAT);
        md.put(SparseManifest.METADATA_KEY, manifest.toJson());
        return md;
    }

    /**
     * @param plans every tensor's plan, in order
     * @return every stored component in container order (the order the shards are filled in)
     */
    public static List<StoredComponent> storedComponents(List<Plan> plans) {
        List<StoredComponent> out = new ArrayList<>();
        for (int i = 0; i < plans.size(); i++) {
            List<SparseManifest.Component> comps = SparseManifest.components(plans.get(i).entry(), plans.get(i).count());
            for (int k = 0; k < comps.size(); k++) {
                out.add(new StoredComponent(i, k, comps.get(k)));
            }
        }
        return out;
    }

    /**
     * Writes one safetensors container file (one shard of the checkpoint) holding the given stored
     * components, byte for byte as {@link #write(DenseTensors, Map, Map, Options, Path)} writes that
     * shard: a tensor whose components span two shards is read and encoded for each. Unquantized
     * plans only. The file appears only when complete.
     *
     * @param src the dense tensors the plans were made from
     * @param plans every tensor's plan, in order
     * @param components this file's components, a contiguous run of {@link #storedComponents}
     * @param containerMetadata {@link #containerMetadata} of the whole checkpoint
     * @param file the file to write (its directory must exist)
     * @throws FormatException when a tensor changed since it was planned
     * @throws io.sparkprune.kernels.InvalidInputException when the stored data is malformed
     * @throws java.io.UncheckedIOException on I/O failure (the temporary file is deleted)
     */
    public static void writeContainer(DenseTensors src, List<Plan> plans, List<StoredComponent> components,
                                      Map<String, String> containerMetadata, Path file) {
        SafetensorsWriter w = SafetensorsWriter.create(file);
        boolean ok = false;
        try {
            for (StoredComponent c : components) {
                w.declare(c.component().name(), c.component().dtype(), c.component().shape());
            }
            w.metadata(containerMetadata);
            w.writeHeader();
            int current = -1;
            byte[][] parts = null;
            for (StoredComponent c : components) {
                if (c.plan() != current) {
                    current = c.plan();
                    parts = stored(src.source(), plans.get(current), encode(src, plans.get(current)));
                }
                w.write(c.component().name(), ByteBuffer.wrap(parts[c.part()]));
            }
            w.close();
            ok = true;
        } finally {
            if (!ok) {
                w.abort();
            }
        }
    }

    /**
     * The second pass for one unquantized tensor: reads and encodes it (payloads raw, before the
     * payload codec; {@link #stored} applies it).
     *
     * @param src the dense tensors
     * @param p its plan
     * @return its payloads' bytes, in {@link SparseManifest#payloads} order
     * @throws FormatException when the tensor changed since it was planned
     * @throws io.sparkprune.kernels.InvalidInputException when the stored data is malformed
     */
    public static byte[][] encode(DenseTensors src, Plan p) {
        SparseManifest.Entry en = p.entry();
        if (en.quantization().isPresent()) {
            throw new IllegalArgumentException("'" + en.name() + "' is quantized; encode() takes unquantized plans");
        }
        List<SparseManifest.Component> comps = SparseManifest.payloads(en, p.count());
        byte[][] parts = encodeBytes(en, bytes(src.read(en.name())));
        for (int k = 0; k < comps.size(); k++) {
            if (parts[k].length != comps.get(k).bytes()) {
                // the source changed between the two passes
                throw new FormatException(src.source() + ": '" + en.name() + "'", "changed while being written ("
                        + comps.get(k).name() + " has " + parts[k].length + " bytes, planned " + comps.get(k).bytes()
                        + "); do not modify the input during conversion");
            }
        }
        return parts;
    }

    /** @return the raw payloads of an unquantized entry from its dense bytes, in {@link SparseManifest#payloads} order */
    private static byte[][] encodeBytes(SparseManifest.Entry en, byte[] d) {
        if (en.encoding() instanceof SparseEncoding.Dense) {
            return new byte[][] {d};
        }
        int e = en.dtype().byteSize();
        if (en.encoding() instanceof SparseEncoding.NofM nm) {
            return SparseCodecs.nmEncode(en.name(), d, en.rows(), en.cols(), e, nm);
        }
        if (en.encoding() instanceof SparseEncoding.Bsr b) {
            return SparseCodecs.bsrEncode(d, en.rows(), en.cols(), e, b);
        }
        return SparseCodecs.bitmaskEncode(d, en.rows(), en.cols(), e);
    }

    /**
     * Applies the payload codec of a plan's entry: every deflated payload becomes its
     * {@code .deflate} and {@code .chunks} tensors ({@link DeflatedPayload#deflate}).
     *
     * @param source the input, for messages
     * @param p the plan
     * @param payloads its raw payloads, in {@link SparseManifest#payloads} order
     * @return its stored components' bytes, in {@link SparseManifest#components} order
     * @throws FormatException when a deflated payload's length differs from the plan's (the input
     *     changed between the passes)
     */
    public static byte[][] stored(String source, Plan p, byte[][] payloads) {
        SparseManifest.Entry en = p.entry();
        if (en.deflated().isEmpty()) {
            return payloads;
        }
        List<SparseManifest.Component> raw = SparseManifest.payloads(en, p.count());
        List<byte[]> out = new ArrayList<>();
        for (int k = 0; k < raw.size(); k++) {
            SparseManifest.Component c = raw.get(k);
            Optional<SparseManifest.Deflated> d = en.deflated(SparseManifest.suffix(en.name(), c));
            if (d.isEmpty()) {
                out.add(payloads[k]);
                continue;
            }
            DeflatedPayload.Stored st = DeflatedPayload.deflate(payloads[k], (int) c.shape()[0], (int) c.shape()[1],
                    d.get().chunkRows());
            if (st.data().length != d.get().bytes()) {
                throw new FormatException(source + ": '" + en.name() + "'", "changed while being written ("
                        + c.name() + " deflates to " + st.data().length + " bytes, planned " + d.get().bytes()
                        + "); do not modify the input during conversion");
            }
            out.add(st.data());
            out.add(st.offsetBytes());
        }
        return out.toArray(new byte[0][]);
    }

    /** @return the plan with its deflatable payloads deflated, their sizes measured on {@code payloads} */
    private static Plan deflated(Plan p, byte[][] payloads) {
        SparseManifest.Entry en = p.entry();
        List<SparseManifest.Component> raw = SparseManifest.payloads(en, p.count());
        List<SparseManifest.Deflated> ds = new ArrayList<>();
        for (int k = 0; k < raw.size(); k++) {
            SparseManifest.Component c = raw.get(k);
            String suffix = SparseManifest.suffix(en.name(), c);
            if (!SparseManifest.DEFLATABLE.contains(suffix)) {
                continue;
            }
            int chunkRows = DeflatedPayload.chunkRows(c.shape()[1]);
            long bytes = DeflatedPayload.deflate(payloads[k], (int) c.shape()[0], (int) c.shape()[1], chunkRows)
                    .data().length;
            ds.add(new SparseManifest.Deflated(suffix, chunkRows, bytes));
        }
        if (ds.isEmpty()) {
            return p;
        }
        return new Plan(new SparseManifest.Entry(en.name(), en.encoding(), en.dtype(), en.shape(), en.quantization(),
                ds), p.count());
    }

    private static Plan plan(DenseTensors src, String name, Options options,
                             Function<String, Optional<QuantizedWeights>> quantized) {
        DType dtype = src.dtype(name);
        long[] shape = src.shape(name);
        if (!compressible(name, dtype, shape, options.targets(), options.encoding())) {
            return new Plan(new SparseManifest.Entry(name, new SparseEncoding.Dense(), dtype, shape), 0);
        }
        if (options.encoding().orElse(null) instanceof SparseEncoding.NofM nm) {
            Optional<QuantizedWeights> q = quantized.apply(name);
            if (q.isPresent()) {
                String where = src.source() + ": '" + name + "'";
                if (q.get().rows() != shape[0] || q.get().cols() != shape[1]) {
                    throw new FormatException(where, "is " + Arrays.toString(shape) + " but its codes are "
                            + q.get().rows() + " x " + q.get().cols() + "; give the codes of this tensor");
                }
                if (shape[1] % nm.m() != 0) {
                    throw new FormatException(where, nm.spec() + " needs in_features divisible by " + nm.m() + ", got "
                            + shape[1] + "; leave this tensor out of the targets");
                }
                Plan p = new Plan(new SparseManifest.Entry(name, nm, dtype, shape, Optional.of(q.get().spec())), 0);
                return options.codec() == PayloadCodec.DEFLATE
                        ? deflated(p, QuantizedNm.encode(name, q.get(), nm, dtype)) : p;
            }
        }
        if (shape[0] * shape[1] * dtype.byteSize() > Integer.MAX_VALUE - 8) {
            throw new FormatException(src.source(), "tensor '" + name + "' " + Arrays.toString(shape) + " is over 2 GiB; "
                    + "the sparse writer holds one tensor in memory and cannot take it: leave it out of the targets");
        }
        byte[] d = bytes(src.read(name));
        Plan p = choose(src.source(), name, dtype, shape, d, options.encoding());
        return options.codec() == PayloadCodec.DEFLATE && !(p.entry().encoding() instanceof SparseEncoding.Dense)
                ? deflated(p, encodeBytes(p.entry(), d)) : p;
    }

    /** @return whether the tensor is a candidate for a non-dense encoding: a 2-D floating-point target, not forced dense */
    static boolean compressible(String name, DType dtype, long[] shape, TensorSelector targets,
                                Optional<SparseEncoding> forced) {
        return shape.length == 2 && dtype.isFloatingPoint() && targets.isTarget(name)
                && !forced.map(e -> e instanceof SparseEncoding.Dense).orElse(false);
    }

    /**
     * The encoding (and stored tile or entry count) of a compressible 2-D tensor: the forced one,
     * checked against the data, else the automatic choice of {@link #detect}.
     */
    static Plan choose(String source, String name, DType dtype, long[] shape, byte[] d, Optional<SparseEncoding> forced) {
        int rows = (int) shape[0];
        int cols = (int) shape[1];
        int e = dtype.byteSize();
        if (forced.isPresent()) {
            SparseEncoding enc = forced.get();
            String where = source + ": '" + name + "'";
            if (enc instanceof SparseEncoding.NofM nm) {
                if (cols % nm.m() != 0) {
                    throw new FormatException(where, nm.spec() + " needs in_features divisible by " + nm.m() + ", got "
                            + cols + "; leave this tensor out of the targets (--ignore) or use --pattern unstructured");
                }
                SparseCodecs.nmCheck(name, d, rows, cols, e, nm);
                return new Plan(new SparseManifest.Entry(name, nm, dtype, shape), 0);
            }
            if (enc instanceof SparseEncoding.Bsr b) {
                if (rows % b.rows() != 0 || cols % b.cols() != 0) {
                    throw new FormatException(where, b.spec() + " tiles do not tile shape " + Arrays.toString(shape)
                            + "; choose a tile whose sides divide it, or leave this tensor out of the targets");
                }
                return new Plan(new SparseManifest.Entry(name, b, dtype, shape), SparseCodecs.bsrCount(d, rows, cols, e, b));
            }
            return new Plan(new SparseManifest.Entry(name, enc, dtype, shape), SparseCodecs.bitmaskCount(d, rows, cols, e));
        }
        return detect(name, dtype, shape, d);
    }

    /** Chooses the encoding with the fewest bytes (dense when nothing saves bytes). */
    private static Plan detect(String name, DType dtype, long[] shape, byte[] d) {
        int rows = (int) shape[0];
        int cols = (int) shape[1];
        int e = dtype.byteSize();
        long nnz = SparseCodecs.bitmaskCount(d, rows, cols, e);
        long denseBytes = (long) rows * cols * e;
        Plan best = new Plan(new SparseManifest.Entry(name, new SparseEncoding.Dense(), dtype, shape), 0);
        long bestBytes = denseBytes;
        if (nnz == (long) rows * cols) {
            return best;
        }
        for (SparseEncoding.NofM nm : List.of(new SparseEncoding.NofM(2, 4), new SparseEncoding.NofM(4, 8))) {
            if (cols % nm.m() != 0 || !nmConforms(d, rows, cols, e, nm)) {
                continue;
            }
            long bytes = (long) rows * (cols / nm.m() * nm.n()) * e + rows * SparseCodecs.nmIndexRowBytes(cols, nm);
            if (bytes < denseBytes) {
                return new Plan(new SparseManifest.Entry(name, nm, dtype, shape), 0); // structure first
            }
        }
        for (int t : AUTO_TILES) {
            if (rows % t != 0 || cols % t != 0) {
                continue;
            }
            SparseEncoding.Bsr b = new SparseEncoding.Bsr(t, t);
            long nnzb = SparseCodecs.bsrCount(d, rows, cols, e, b);
            long bytes = nnzb * t * t * e + 4 * nnzb + 8L * (rows / t + 1);
            if (bytes < bestBytes) {
                bestBytes = bytes;
                best = new Plan(new SparseManifest.Entry(name, b, dtype, shape), nnzb);
            }
        }
        long bytes = rows * SparseCodecs.maskRowBytes(cols) + nnz * e + 8L * (rows + 1);
        if (bytes < bestBytes) {
            best = new Plan(new SparseManifest.Entry(name, new SparseEncoding.Bitmask(), dtype, shape), nnz);
        }
        return best;
    }

    private static boolean nmConforms(byte[] d, int rows, int cols, int e, SparseEncoding.NofM nm) {
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < cols / nm.m(); g++) {
                int count = 0;
                for (int j = 0; j < nm.m(); j++) {
                    if (SparseCodecs.stored(d, r * cols + g * nm.m() + j, e)) {
                        count++;
                    }
                }
                if (count > nm.n()) {
                    return false;
                }
            }
        }
        return true;
    }

    private static void writeTensor(ShardedCheckpointWriter w, DenseTensors src, Plan p,
                                    Function<String, Optional<QuantizedWeights>> quantized) {
        SparseManifest.Entry en = p.entry();
        List<SparseManifest.Component> comps = SparseManifest.components(en, p.count());
        if (en.quantization().isPresent()) {
            QuantizedWeights q = quantized.apply(en.name()).filter(x -> x.spec().equals(en.quantization().get()))
                    .orElseThrow(() -> new FormatException(src.source() + ": '" + en.name() + "'", "its codes changed "
                            + "between the two passes; do not modify the input during conversion"));
            byte[][] parts = stored(src.source(), p,
                    QuantizedNm.encode(en.name(), q, (SparseEncoding.NofM) en.encoding(), en.dtype()));
            for (int k = 0; k < comps.size(); k++) {
                w.write(comps.get(k).name(), ByteBuffer.wrap(parts[k]));
            }
            return;
        }
        if (en.encoding() instanceof SparseEncoding.Dense) {
            w.write(en.name(), src.read(en.name()));
            return;
        }
        byte[][] parts = stored(src.source(), p, encode(src, p));
        for (int k = 0; k < comps.size(); k++) {
            w.write(comps.get(k).name(), ByteBuffer.wrap(parts[k]));
        }
    }

    static byte[] bytes(HostTensor t) {
        byte[] b = new byte[(int) t.byteLength()];
        t.data().duplicate().get(b);
        return b;
    }
}
