package io.sparkprune.pipeline.formats.parquet;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Type.Repetition;
import org.apache.parquet.schema.Types;

/**
 * The table schema of a Parquet shards part file (docs/formats.md, "Parquet shards"), message
 * {@code sparkprune_tensor_rows}, one row per (tensor, row range):
 * <pre>
 * required binary tensor (STRING);
 * required int64 row_start;              first row (outermost dimension)
 * required int64 row_end;                one past the last row
 * repeated int64 shape;                  the tensor's original shape, outermost first
 * required binary dtype (STRING);        safetensors dtype name: F32, BF16, ...
 * required binary encoding (STRING);     dense, N:M (2:4, 4:8), block:RxC, unstructured
 * required int64 dense_bytes;            (row_end − row_start) · row elements · dtype bytes
 * required int64 stored_bytes;           sum of the payload columns' lengths
 * required binary values;                payload, as the sparse format's components
 * optional binary indices;               N:M only
 * optional binary col_indices;           block only
 * optional binary row_ptr;               block and unstructured
 * optional binary mask;                  unstructured only
 * required fixed_len_byte_array(32) dense_sha256;
 * required fixed_len_byte_array(32) payload_sha256;
 * </pre>
 */
public final class ParquetShardSchema {
    /** Column {@code tensor}. */
    public static final String TENSOR = "tensor";
    /** Column {@code row_start}. */
    public static final String ROW_START = "row_start";
    /** Column {@code row_end}. */
    public static final String ROW_END = "row_end";
    /** Column {@code shape}. */
    public static final String SHAPE = "shape";
    /** Column {@code dtype}. */
    public static final String DTYPE = "dtype";
    /** Column {@code encoding}. */
    public static final String ENCODING = "encoding";
    /** Column {@code dense_bytes}. */
    public static final String DENSE_BYTES = "dense_bytes";
    /** Column {@code stored_bytes}. */
    public static final String STORED_BYTES = "stored_bytes";
    /** Column {@code dense_sha256}. */
    public static final String DENSE_SHA256 = "dense_sha256";
    /** Column {@code payload_sha256}. */
    public static final String PAYLOAD_SHA256 = "payload_sha256";
    /** The payload columns, each holding the sparse component of the same name. */
    public static final List<String> PAYLOAD = List.of("values", "indices", "col_indices", "row_ptr", "mask");

    /** The schema. */
    public static final MessageType SCHEMA = Types.buildMessage()
            .required(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named(TENSOR)
            .required(PrimitiveTypeName.INT64).named(ROW_START)
            .required(PrimitiveTypeName.INT64).named(ROW_END)
            .repeated(PrimitiveTypeName.INT64).named(SHAPE)
            .required(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named(DTYPE)
            .required(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named(ENCODING)
            .required(PrimitiveTypeName.INT64).named(DENSE_BYTES)
            .required(PrimitiveTypeName.INT64).named(STORED_BYTES)
            .required(PrimitiveTypeName.BINARY).named("values")
            .optional(PrimitiveTypeName.BINARY).named("indices")
            .optional(PrimitiveTypeName.BINARY).named("col_indices")
            .optional(PrimitiveTypeName.BINARY).named("row_ptr")
            .optional(PrimitiveTypeName.BINARY).named("mask")
            .required(PrimitiveTypeName.FIXED_LEN_BYTE_ARRAY).length(32).named(DENSE_SHA256)
            .required(PrimitiveTypeName.FIXED_LEN_BYTE_ARRAY).length(32).named(PAYLOAD_SHA256)
            .named("sparkprune_tensor_rows");

    private ParquetShardSchema() {
    }

    /**
     * @param data bytes
     * @return their SHA-256 (FIPS 180-4)
     */
    public static byte[] sha256(byte[] data) {
        return digest().digest(data);
    }

    /**
     * The payload checksum: SHA-256 over, for each payload array in the encoding's component order
     * ({@link io.sparkprune.pipeline.formats.sparse.SparsePayloads#componentNames}), its length as
     * an 8-byte little-endian integer followed by its bytes.
     *
     * @param payload the arrays in component order
     * @return the digest, 32 bytes
     */
    public static byte[] payloadSha256(byte[][] payload) {
        MessageDigest md = digest();
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        for (byte[] p : payload) {
            len.clear();
            len.putLong(p.length);
            md.update(len.array());
            md.update(p);
        }
        return md.digest();
    }

    private static MessageDigest digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }
}
