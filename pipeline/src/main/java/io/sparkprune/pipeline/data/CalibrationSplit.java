package io.sparkprune.pipeline.data;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Objects;

/**
 * Deterministic calibration / held-out split of documents by content.
 *
 * <p>Rule: {@code h} = the first 8 bytes, read big-endian as an unsigned 64-bit integer, of
 * {@code SHA-256(seed as 8 bytes big-endian || UTF-8 bytes of the document)}. The document is
 * <em>held out</em> iff {@code h < floor(f * 2^64)} (unsigned), where f is the held-out fraction
 * ({@code f = 1} holds out everything); otherwise it is a calibration document.
 *
 * <p>The decision depends only on the seed, the fraction and the document's text (as the sources
 * give it: stripped of surrounding white space), so it does not depend on file order, file
 * boundaries or how a Spark job partitions the documents, and copies of a text always land on the
 * same side (no leakage between the parts). Each document is held out with probability f.
 */
public final class CalibrationSplit {

    /** Default held-out fraction. */
    public static final double DEFAULT_HELD_OUT_FRACTION = 0.1;

    private static final ThreadLocal<MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform provides SHA-256", e);
        }
    });

    private final long seed;
    private final double heldOutFraction;
    private final long threshold; // unsigned floor(f * 2^64); unused when all
    private final boolean all;

    /**
     * @param seed split seed (use a different seed for a different split)
     * @param heldOutFraction f in [0, 1]
     * @throws CalibrationDataException when f is outside [0, 1] or NaN
     */
    public CalibrationSplit(long seed, double heldOutFraction) {
        if (!(heldOutFraction >= 0.0 && heldOutFraction <= 1.0)) {
            throw new CalibrationDataException("held-out fraction must be in [0, 1], got " + heldOutFraction
                    + "; fix: use e.g. " + DEFAULT_HELD_OUT_FRACTION);
        }
        this.seed = seed;
        this.heldOutFraction = heldOutFraction;
        this.all = heldOutFraction == 1.0;
        BigInteger t = new BigDecimal(heldOutFraction).multiply(new BigDecimal(BigInteger.ONE.shiftLeft(64))).toBigInteger();
        this.threshold = all ? -1L : t.longValue(); // < 2^64 here, longValue keeps the low 64 bits
    }

    /**
     * @param seed split seed
     * @return a split holding out {@value #DEFAULT_HELD_OUT_FRACTION} of the documents
     */
    public static CalibrationSplit withDefaultFraction(long seed) {
        return new CalibrationSplit(seed, DEFAULT_HELD_OUT_FRACTION);
    }

    /** @return the seed */
    public long seed() {
        return seed;
    }

    /** @return the held-out fraction f */
    public double heldOutFraction() {
        return heldOutFraction;
    }

    /**
     * The split hash of a document.
     *
     * @param seed split seed
     * @param document the document text
     * @return the first 8 bytes of SHA-256(seed big-endian || UTF-8 text), big-endian, as a long
     *     (compare it unsigned)
     */
    public static long hash(long seed, String document) {
        MessageDigest md = SHA256.get();
        md.reset();
        md.update(ByteBuffer.allocate(Long.BYTES).putLong(seed).array());
        md.update(document.getBytes(StandardCharsets.UTF_8));
        return ByteBuffer.wrap(md.digest()).getLong();
    }

    /**
     * @param document the document text
     * @return true when the document belongs to the held-out part
     */
    public boolean isHeldOut(String document) {
        Objects.requireNonNull(document, "document");
        if (all) {
            return true;
        }
        return Long.compareUnsigned(hash(seed, document), threshold) < 0;
    }

    /**
     * @param source all documents
     * @return the documents that are not held out
     */
    public DocumentSource calibrationPart(DocumentSource source) {
        return source.filter("calibration part: seed " + seed + ", held-out fraction " + heldOutFraction,
                doc -> !isHeldOut(doc));
    }

    /**
     * @param source all documents
     * @return the held-out documents
     */
    public DocumentSource heldOutPart(DocumentSource source) {
        return source.filter("held-out part: seed " + seed + ", held-out fraction " + heldOutFraction, this::isHeldOut);
    }

    @Override
    public String toString() {
        return "CalibrationSplit[seed " + seed + ", held out " + heldOutFraction + "]";
    }
}
