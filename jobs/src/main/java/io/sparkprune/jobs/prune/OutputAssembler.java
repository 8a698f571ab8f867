package io.sparkprune.jobs.prune;

import io.sparkprune.jobs.commit.CommitLog;
import io.sparkprune.pipeline.safetensors.SafetensorsFile;
import io.sparkprune.pipeline.safetensors.SafetensorsWriter;
import io.sparkprune.pipeline.safetensors.ShardedCheckpoint;
import io.sparkprune.pipeline.safetensors.TensorInfo;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Set;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Writes the pruned checkpoint: the input's files one for one (same shard files, same tensor order,
 * dtypes, shapes and {@code __metadata__}, the same index), with each pruned tensor streamed from
 * its committed staging shards and every other tensor copied by byte range; plus config.json and
 * the tokenizer and generation files beside the weights. Memory stays bounded by one copy chunk.
 *
 * <p>Files are assembled in {@code <output>/_assembling} and renamed into the output directory
 * when all are complete.
 */
final class OutputAssembler {
    /** Files copied unchanged from the input directory when present. */
    static final List<String> SIDE_FILES = List.of("config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model",
            "added_tokens.json", "modules.json", "sentence_bert_config.json");
    private static final int CHUNK = 16 << 20;

    private OutputAssembler() {
    }

    static void assemble(ShardedCheckpoint in, CommitLog log, FileSystem fs, Path out) throws IOException {
        Path tmp = new Path(out, "_assembling");
        if (fs.exists(tmp)) {
            fs.delete(tmp, true);
        }
        fs.mkdirs(tmp);
        Set<String> pruned = log.committedShards().keySet();
        for (String file : in.files()) {
            SafetensorsFile src = in.shard(file);
            try (SafetensorsWriter w = SafetensorsWriter.create(fs, new Path(tmp, file))) {
                for (TensorInfo t : src.tensors()) {
                    w.declare(t.name(), t.dtype(), t.shape());
                }
                w.metadata(src.metadata());
                w.writeHeader();
                for (TensorInfo t : src.tensors()) {
                    if (pruned.contains(t.name())) {
                        log.transferTensor(t.name(), new OutputStream() {
                            @Override
                            public void write(int b) {
                                w.write(t.name(), ByteBuffer.wrap(new byte[] {(byte) b}));
                            }

                            @Override
                            public void write(byte[] b, int off, int len) {
                                w.write(t.name(), ByteBuffer.wrap(b, off, len));
                            }
                        });
                    } else {
                        for (long off = 0; off < t.byteLength(); off += CHUNK) {
                            int len = (int) Math.min(CHUNK, t.byteLength() - off);
                            w.write(t.name(), src.readBytes(t.name(), off, len));
                        }
                    }
                }
            }
        }
        for (String side : sideFiles(in)) {
            java.util.Optional<byte[]> bytes = in.readSideFile(side, 1L << 30);
            if (bytes.isPresent()) {
                try (FSDataOutputStream o = fs.create(new Path(tmp, side), true)) {
                    o.write(bytes.get());
                }
            }
        }
        for (org.apache.hadoop.fs.FileStatus st : fs.listStatus(tmp)) {
            Path target = new Path(out, st.getPath().getName());
            if (fs.exists(target)) {
                fs.delete(target, false);
            }
            if (!fs.rename(st.getPath(), target)) {
                throw new IOException("cannot move " + st.getPath() + " to " + target);
            }
        }
        fs.delete(tmp, true);
    }

    /** The side files to copy when present: {@link #SIDE_FILES}, plus the index of a sharded checkpoint. */
    private static List<String> sideFiles(ShardedCheckpoint in) {
        List<String> res = new java.util.ArrayList<>(SIDE_FILES);
        if (in.isIndexed()) {
            res.add(ShardedCheckpoint.INDEX_FILE);
        }
        return res;
    }
}
