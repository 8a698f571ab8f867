package io.sparkprune.pipeline.safetensors;

import static io.sparkprune.pipeline.safetensors.Fixtures.assemble;
import static io.sparkprune.pipeline.safetensors.Fixtures.le;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.sparkprune.kernels.InvalidInputException;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Every header rule gives a {@link SafetensorsFormatException} naming the file, the key, and the problem. */
class SafetensorsValidationTest {
    @TempDir
    Path tmp;

    private static final String A = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    static byte[] raw(long prefix, byte[] rest) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(le(prefix, 8));
        out.writeBytes(rest);
        return out.toByteArray();
    }

    static Arguments c(String name, byte[] file, String key, String phrase) {
        return Arguments.of(name, file, key, phrase);
    }

    static Arguments h(String name, String header, int dataBytes, String key, String phrase) {
        return c(name, assemble(header, new byte[dataBytes]), key, phrase);
    }

    static Stream<Arguments> cases() {
        return Stream.of(
                c("shorter than prefix", new byte[5], null, "shorter than the 8-byte header length prefix"),
                c("header length over 100 MB", raw(100_000_001L, "{}".getBytes(StandardCharsets.UTF_8)), null,
                        "exceeds the 100000000-byte limit"),
                c("header length 2^64-1", raw(-1L, new byte[16]), null, "18446744073709551615"),
                c("header length past end", raw(1000, "{}".getBytes(StandardCharsets.UTF_8)), null,
                        "runs past the end of the file"),
                c("header length 0", raw(0, new byte[8]), null, "too small"),
                c("header length 1", raw(1, "{".getBytes(StandardCharsets.UTF_8)), null, "too small"),
                h("not an object", "[1,2]", 0, null, "does not start with '{'"),
                h("malformed JSON", "{\"a\":", 0, null, "not valid JSON"),
                h("trailing garbage", "{} x", 0, null, "not valid JSON"),
                h("second JSON value", "{} {}", 0, null, "content after its JSON object"),
                c("invalid UTF-8", raw(6, new byte[] {'{', '"', (byte) 0xC3, 0x28, '"', '}'}), null, "not valid UTF-8"),
                c("UTF-16 header", raw(4, "{}".getBytes(StandardCharsets.UTF_16LE)), null, "not valid JSON"),
                h("tensor entry not an object", "{\"a\":5}", 0, "a", "must be an object"),
                h("dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "a",
                        "\"dtype\" must be a string"),
                h("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "a", "\"dtype\" must be a string"),
                h("unknown dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "a",
                        "unsupported dtype \"F8_E4M3\"; supported: [F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL]"),
                h("shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, "a",
                        "\"shape\" must be an array"),
                h("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "a",
                        "\"shape\"[0] = -2 is negative"),
                h("fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "a",
                        "must be a non-negative integer, got number 2.0"),
                h("string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "a",
                        "must be a non-negative integer, got string"),
                h("dim 2^64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,8]}}", 8,
                        "a", "is too large"),
                h("shape product overflows", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                        + "\"data_offsets\":[0,8]}}", 8, "a", "too large"),
                h("bytes overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
                        + "\"data_offsets\":[0,8]}}", 8, "a", "too large"),
                h("overflow hidden by a later zero", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],"
                        + "\"data_offsets\":[0,0]}}", 0, "a", "too large"),
                h("offsets not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"b\":0}}}", 8, "a",
                        "\"data_offsets\" must be an array"),
                h("three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8, "a",
                        "must have 2 entries"),
                h("offset 2^63", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9223372036854775808]}}",
                        8, "a", "is too large"),
                h("negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "a",
                        "is negative"),
                h("end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "a",
                        "end before they begin"),
                h("offsets past data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "a",
                        "run past the end of the data section (4 bytes)"),
                h("length mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "a",
                        "hold 8 bytes but F32 [3] needs 12 bytes"),
                h("overlap", "{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "b",
                        "overlap tensor 'a'"),
                h("gap", "{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16, "b",
                        "leave a gap of 4 bytes after tensor 'a'"),
                h("first not at 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "a",
                        "gap of 4 bytes after the start of the data section"),
                h("trailing data", "{" + A + "}", 12, null, "4 trailing bytes no tensor owns"),
                h("duplicate tensor", "{" + A + "," + A + "}", 8, "a", "appears more than once"),
                h("duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "k",
                        "appears more than once"),
                h("duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__",
                        "appears more than once"),
                h("metadata not an object", "{\"__metadata__\":[\"x\"]}", 0, "__metadata__", "must be an object"),
                h("metadata number value", "{\"__metadata__\":{\"step\":5}}", 0, "__metadata__.step",
                        "metadata values must be strings, got number"),
                h("metadata null value", "{\"__metadata__\":{\"step\":null}}", 0, "__metadata__.step",
                        "metadata values must be strings"),
                h("deep nesting in an ignored field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],"
                        + "\"x\":" + "[".repeat(5000) + "]".repeat(5000) + "}}", 8, null, "nesting depth"),
                h("deep nesting in metadata", "{\"__metadata__\":" + "[".repeat(5000) + "]".repeat(5000) + "}", 0,
                        "__metadata__", "must be an object of string values, got array"),
                h("metadata object value", "{\"__metadata__\":{\"k\":{\"a\":1}}}", 0, "__metadata__.k",
                        "metadata values must be strings, got object"),
                h("huge number literal", "{\"a\":{\"dtype\":\"F32\",\"shape\":[" + "9".repeat(5000)
                        + "],\"data_offsets\":[0,8]}}", 8, null, "not valid JSON"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void rejectedWithTypedMessage(String name, byte[] content, String key, String phrase) throws Exception {
        Path p = Fixtures.writeBytes(tmp, "bad.safetensors", content);
        assertThatThrownBy(() -> SafetensorsFile.open(p).close())
                .isInstanceOf(SafetensorsFormatException.class)
                .isInstanceOf(InvalidInputException.class)
                .hasMessageStartingWith(p.toString() + ": " + (key == null ? "" : "'" + key + "': "))
                .hasMessageContaining(phrase)
                .satisfies(e -> {
                    SafetensorsFormatException s = (SafetensorsFormatException) e;
                    assertThat(s.file()).isEqualTo(p.toString());
                    assertThat(s.key().orElse(null)).isEqualTo(key);
                });
        // the in-memory path validates identically
        assertThatThrownBy(() -> SafetensorsFile.fromBytes(content, "mem"))
                .isInstanceOf(SafetensorsFormatException.class).hasMessageContaining(phrase);
    }

    @Test
    void acceptsWhatTheReferenceAccepts() throws Exception {
        // unknown extra fields ignored, null metadata, zero-size tensors sharing an offset, whitespace padding
        String header = "{\"__metadata__\":null,\"z\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1},"
                + "\"y\":{\"dtype\":\"I8\",\"shape\":[2,0,3],\"data_offsets\":[0,0]}," + A + "}\n\t  ";
        Path p = Fixtures.writeBytes(tmp, "ok.safetensors", assemble(header, new byte[8]));
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.tensors()).extracting(TensorInfo::name).containsExactly("z", "y", "a");
            assertThat(f.metadata()).isEmpty();
            assertThat(f.read("y").shape()).containsExactly(2, 0, 3);
            assertThat(f.readRows("y", 1, 1).shape()).containsExactly(1, 0, 3);
        }
    }

    @Test
    void missingFileAndDirectoryAreTyped() {
        Path missing = tmp.resolve("nope.safetensors");
        assertThatThrownBy(() -> SafetensorsFile.open(missing))
                .isInstanceOf(SafetensorsFormatException.class)
                .hasMessage(missing + ": file not found; check the path");
        assertThatThrownBy(() -> SafetensorsFile.open(tmp))
                .isInstanceOf(SafetensorsFormatException.class)
                .hasMessageContaining("is a directory").hasMessageContaining("ShardedCheckpoint.open");
    }

    @Test
    void missingTensorNamesFileAndTensor() throws Exception {
        Path p = Fixtures.writeBytes(tmp, "one.safetensors", assemble("{" + A + "}", new byte[8]));
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.find("zz")).isEmpty();
            assertThatThrownBy(() -> f.info("zz")).isInstanceOf(SafetensorsFormatException.class)
                    .hasMessageStartingWith(p + ": 'zz': no such tensor");
            assertThatThrownBy(() -> f.read("zz")).isInstanceOf(SafetensorsFormatException.class);
            assertThatThrownBy(() -> f.readRows("a", 1, 2)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("rowStart 1 and rowCount 2 select rows outside [0, 2)");
            assertThatThrownBy(() -> f.readRows("a", -1, 1)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> f.readBytes("a", 4, 5)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("outside [0, 8)");
        }
        assertThat(Files.exists(p)).isTrue();
    }

    @Test
    void hugeClaimedHeaderIsRejectedBeforeAllocating() {
        long before = ReadBuffers.ALLOCATIONS.sum();
        byte[] file = raw(99_999_999L, "{}".getBytes(StandardCharsets.UTF_8));
        ReadBuffers.LARGEST.set(0);
        assertThatThrownBy(() -> SafetensorsFile.fromBytes(file, "mem"))
                .isInstanceOf(SafetensorsFormatException.class).hasMessageContaining("runs past the end");
        assertThat(ReadBuffers.ALLOCATIONS.sum()).isEqualTo(before);
        assertThat(ReadBuffers.LARGEST.get()).isZero();
    }

    @Test
    void allocationGuardRejectsSizesBeyondTheFile() {
        assertThat(ReadBuffers.allocate(10, 10, "f")).hasSize(10);
        assertThatThrownBy(() -> ReadBuffers.allocate(11, 10, "f")).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("refusing to allocate 11 bytes");
        assertThatThrownBy(() -> ReadBuffers.allocate(-1, 10, "f")).isInstanceOf(IllegalStateException.class);
    }
}
