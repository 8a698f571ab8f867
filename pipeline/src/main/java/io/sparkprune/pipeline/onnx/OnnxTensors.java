package io.sparkprune.pipeline.onnx;

import com.google.protobuf.ByteString;
import io.sparkprune.kernels.DType;
import io.sparkprune.kernels.HostTensor;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.StringStringEntryProto;
import io.sparkprune.pipeline.onnx.proto.OnnxProto.TensorProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Optional;

/**
 * Converts single tensors between ONNX {@code TensorProto} and {@link HostTensor}.
 *
 * <p>ONNX stores a tensor's elements row-major either in {@code raw_data} (fixed width,
 * little-endian, the layout {@link HostTensor} uses, so it is taken without copying) or in the typed
 * repeated fields {@code float_data}, {@code double_data}, {@code int64_data} and {@code int32_data}
 * (which also carries INT8/UINT8/INT16/BOOL values and the bit patterns of FLOAT16/BFLOAT16), as
 * specified by the {@code TensorProto} comments of {@code onnx.proto}. Data kept in an external
 * file ({@code data_location = EXTERNAL}) and segmented tensors are rejected with a typed error.
 *
 * <p>Supported element types (ONNX {@code TensorProto.DataType} → {@link DType}): FLOAT → F32,
 * FLOAT16 → F16, BFLOAT16 → BF16, DOUBLE → F64, INT64 → I64, INT32 → I32, INT16 → I16,
 * INT8 → I8, UINT8 → U8, BOOL → BOOL.
 */
public final class OnnxTensors {

    private OnnxTensors() {
    }

    /**
     * Maps an ONNX element type code to a {@link DType}.
     *
     * @param onnxDataType value of {@code TensorProto.data_type}
     * @return the dtype, or empty for types SparkPrune does not hold (STRING, UINT16/32/64,
     *     complex, float8, 4-bit and 2-bit types, UNDEFINED)
     */
    public static Optional<DType> dtypeOf(int onnxDataType) {
        TensorProto.DataType dt = TensorProto.DataType.forNumber(onnxDataType);
        if (dt == null) {
            return Optional.empty();
        }
        return Optional.ofNullable(switch (dt) {
            case FLOAT -> DType.F32;
            case FLOAT16 -> DType.F16;
            case BFLOAT16 -> DType.BF16;
            case DOUBLE -> DType.F64;
            case INT64 -> DType.I64;
            case INT32 -> DType.I32;
            case INT16 -> DType.I16;
            case INT8 -> DType.I8;
            case UINT8 -> DType.U8;
            case BOOL -> DType.BOOL;
            default -> null;
        });
    }

    /**
     * Maps a {@link DType} to its ONNX element type.
     *
     * @param dtype any dtype
     * @return the {@code TensorProto.DataType} with the same element encoding
     */
    public static TensorProto.DataType onnxTypeOf(DType dtype) {
        return switch (dtype) {
            case F32 -> TensorProto.DataType.FLOAT;
            case F16 -> TensorProto.DataType.FLOAT16;
            case BF16 -> TensorProto.DataType.BFLOAT16;
            case F64 -> TensorProto.DataType.DOUBLE;
            case I64 -> TensorProto.DataType.INT64;
            case I32 -> TensorProto.DataType.INT32;
            case I16 -> TensorProto.DataType.INT16;
            case I8 -> TensorProto.DataType.INT8;
            case U8 -> TensorProto.DataType.UINT8;
            case BOOL -> TensorProto.DataType.BOOL;
        };
    }

    /**
     * Decodes a tensor stored inside the ONNX file.
     *
     * @param tensor an initializer or the {@code value} of a Constant node
     * @param source the file (or other label) the tensor came from, for error messages
     * @return a tensor with the same dtype, shape {@code tensor.dims} and elements; for
     *     {@code raw_data} it is a read-only view of the protobuf's bytes, for typed fields a new
     *     little-endian buffer
     * @throws OnnxFormatException when the data lives in an external file, the tensor is segmented,
     *     the element type is unsupported, a dimension is negative, or the stored element count or
     *     byte length does not match the dims
     */
    public static HostTensor toHostTensor(TensorProto tensor, String source) {
        String name = tensor.getName().isEmpty() ? "<unnamed tensor>" : tensor.getName();
        if (tensor.getDataLocation() == TensorProto.DataLocation.EXTERNAL || tensor.getExternalDataCount() > 0) {
            throw new OnnxFormatException("ONNX file " + source + ": tensor '" + name + "' keeps its data in an external file ("
                    + describeExternal(tensor) + "); SparkPrune reads only self-contained ONNX files. Fix: re-export with all"
                    + " tensors inside the .onnx file, e.g. in Python `m = onnx.load(path)` (loads the external data) then"
                    + " `onnx.save_model(m, 'model-single.onnx', save_as_external_data=False)`; this works for models under"
                    + " the 2 GB protobuf limit");
        }
        if (tensor.hasSegment()) {
            throw new OnnxFormatException("ONNX file " + source + ": tensor '" + name + "' is segmented (segment "
                    + tensor.getSegment().getBegin() + ".." + tensor.getSegment().getEnd()
                    + "); segmented tensors are not supported. Fix: re-save the model with whole tensors");
        }
        DType dtype = dtypeOf(tensor.getDataType()).orElseThrow(() -> new OnnxFormatException("ONNX file " + source
                + ": tensor '" + name + "' has element type " + typeName(tensor.getDataType())
                + ", which SparkPrune does not support (supported: FLOAT, FLOAT16, BFLOAT16, DOUBLE, INT64, INT32, INT16,"
                + " INT8, UINT8, BOOL). Fix: export the model with float32 weights"));
        long[] shape = new long[tensor.getDimsCount()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = tensor.getDims(i);
            if (shape[i] < 0) {
                throw new OnnxFormatException("ONNX file " + source + ": tensor '" + name + "' has a negative dimension in dims "
                        + tensor.getDimsList() + "; the file is corrupt. Fix: re-export the model");
            }
        }
        long numel;
        long byteLength;
        try {
            numel = HostTensor.numel(shape);
            byteLength = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new OnnxFormatException("ONNX file " + source + ": tensor '" + name + "' has dims " + tensor.getDimsList()
                    + " whose element count overflows; the file is corrupt", e);
        }
        if (byteLength > Integer.MAX_VALUE - 8) {
            throw new OnnxFormatException("ONNX file " + source + ": tensor '" + name + "' has " + byteLength
                    + " bytes, more than one protobuf message can hold; the file is corrupt");
        }
        if (tensor.hasRawData()) {
            ByteString raw = tensor.getRawData();
            if (raw.size() != byteLength) {
                throw new OnnxFormatException("ONNX file " + source + ": tensor '" + name + "' of " + typeName(tensor.getDataType())
                        + " " + tensor.getDimsList() + " needs " + byteLength + " bytes of raw_data, found " + raw.size()
                        + "; the file is corrupt or truncated. Fix: re-export the model");
            }
            return new HostTensor(dtype, shape, raw.asReadOnlyByteBuffer());
        }
        ByteBuffer out = ByteBuffer.allocate((int) byteLength).order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) numel;
        switch (dtype) {
            case F32 -> {
                checkCount(tensor.getFloatDataCount(), n, "float_data", name, tensor, source);
                for (int i = 0; i < n; i++) {
                    out.putFloat(4 * i, tensor.getFloatData(i));
                }
            }
            case F64 -> {
                checkCount(tensor.getDoubleDataCount(), n, "double_data", name, tensor, source);
                for (int i = 0; i < n; i++) {
                    out.putDouble(8 * i, tensor.getDoubleData(i));
                }
            }
            case I64 -> {
                checkCount(tensor.getInt64DataCount(), n, "int64_data", name, tensor, source);
                for (int i = 0; i < n; i++) {
                    out.putLong(8 * i, tensor.getInt64Data(i));
                }
            }
            case I32 -> {
                checkCount(tensor.getInt32DataCount(), n, "int32_data", name, tensor, source);
                for (int i = 0; i < n; i++) {
                    out.putInt(4 * i, tensor.getInt32Data(i));
                }
            }
            case I16, F16, BF16 -> {
                // FLOAT16/BFLOAT16 values are stored as their 16-bit patterns, one per int32 element.
                checkCount(tensor.getInt32DataCount(), n, "int32_data", name, tensor, source);
                for (int i = 0; i < n; i++) {
                    out.putShort(2 * i, (short) tensor.getInt32Data(i));
                }
            }
            case I8, U8, BOOL -> {
                checkCount(tensor.getInt32DataCount(), n, "int32_data", name, tensor, source);
                for (int i = 0; i < n; i++) {
                    out.put(i, (byte) tensor.getInt32Data(i));
                }
            }
            default -> throw new IllegalStateException("unhandled dtype " + dtype);
        }
        return new HostTensor(dtype, shape, out);
    }

    /**
     * Encodes a host tensor as a self-contained ONNX initializer ({@code raw_data}, little-endian).
     *
     * @param name initializer name
     * @param tensor any host tensor (its bytes are copied)
     * @return a {@code TensorProto} with {@code name}, {@code dims}, {@code data_type} and
     *     {@code raw_data} set
     */
    public static TensorProto toTensorProto(String name, HostTensor tensor) {
        TensorProto.Builder b = TensorProto.newBuilder()
                .setName(name)
                .setDataType(onnxTypeOf(tensor.dtype()).getNumber());
        for (long d : tensor.shape()) {
            b.addDims(d);
        }
        return b.setRawData(ByteString.copyFrom(tensor.data().duplicate())).build();
    }

    /**
     * @param onnxDataType value of {@code TensorProto.data_type}
     * @return the enum name, e.g. {@code "FLOAT"}, or {@code "data_type 99"} for an unknown code
     */
    public static String typeName(int onnxDataType) {
        TensorProto.DataType dt = TensorProto.DataType.forNumber(onnxDataType);
        return dt == null ? "data_type " + onnxDataType : dt.name();
    }

    private static void checkCount(int found, int needed, String field, String name, TensorProto t, String source) {
        if (found != needed) {
            throw new OnnxFormatException("ONNX file " + source + ": tensor '" + name + "' of " + typeName(t.getDataType()) + " "
                    + t.getDimsList() + " needs " + needed + " values, found " + found + " in " + field
                    + " and no raw_data; the file is corrupt or truncated. Fix: re-export the model");
        }
    }

    private static String describeExternal(TensorProto t) {
        if (t.getExternalDataCount() == 0) {
            return "data_location = EXTERNAL";
        }
        StringBuilder sb = new StringBuilder();
        for (StringStringEntryProto e : t.getExternalDataList()) {
            if (sb.length() > 0) {
                sb.append(", ");
            }
            sb.append(e.getKey()).append('=').append(e.getValue());
        }
        return sb.toString();
    }

    /**
     * Transposes a rank-2 tensor: element (i, j) of the input becomes element (j, i) of the
     * result. Elements are moved as whole bytes, so values (including NaN payloads and signed
     * zeros) are copied bit for bit.
     *
     * @param t a tensor of shape (rows x cols), row-major, any dtype
     * @return a new heap tensor of shape (cols x rows), row-major, same dtype
     * @throws IllegalArgumentException when {@code t} is not rank 2
     */
    public static HostTensor transpose2d(HostTensor t) {
        long[] s = t.shape();
        if (s.length != 2) {
            throw new IllegalArgumentException("transpose2d needs a rank-2 tensor, got shape " + Arrays.toString(s));
        }
        int rows = Math.toIntExact(s[0]);
        int cols = Math.toIntExact(s[1]);
        int e = t.dtype().byteSize();
        ByteBuffer src = t.data().duplicate().order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer dst = ByteBuffer.allocate(Math.toIntExact(t.byteLength())).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                int from = (i * cols + j) * e;
                int to = (j * rows + i) * e;
                switch (e) {
                    case 4 -> dst.putInt(to, src.getInt(from));
                    case 2 -> dst.putShort(to, src.getShort(from));
                    case 8 -> dst.putLong(to, src.getLong(from));
                    default -> dst.put(to, src.get(from));
                }
            }
        }
        return new HostTensor(t.dtype(), new long[] {cols, rows}, dst);
    }
}
