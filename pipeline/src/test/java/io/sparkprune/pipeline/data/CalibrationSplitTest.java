package io.sparkprune.pipeline.data;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;

class CalibrationSplitTest {

    static List<String> corpus(int n) {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            docs.add("document number " + i + " about topic " + (i * 7919 % 113));
        }
        return docs;
    }

    @Test
    void hashIsFirstEightBytesOfSha256OfSeedAndText() throws Exception {
        long seed = 0x0102030405060708L;
        String doc = "Zürich été";
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
        byte[] digest = md.digest(doc.getBytes(StandardCharsets.UTF_8));
        long expected = new BigInteger(1, java.util.Arrays.copyOf(digest, 8)).longValue();
        assertThat(CalibrationSplit.hash(seed, doc)).isEqualTo(expected);

        // the threshold rule, restated with BigInteger: held out iff h < floor(f * 2^64)
        CalibrationSplit split = new CalibrationSplit(seed, 0.3);
        BigInteger threshold = new java.math.BigDecimal("0.3").multiply(new java.math.BigDecimal(BigInteger.TWO.pow(64)))
                .toBigInteger();
        for (String d : corpus(200)) {
            BigInteger h = new BigInteger(Long.toUnsignedString(CalibrationSplit.hash(seed, d)));
            // 0.3 is not exact in binary; no hash of these 200 falls in the sliver between the two thresholds
            assertThat(split.isHeldOut(d)).as(d).isEqualTo(h.compareTo(threshold) < 0);
        }
    }

    @Test
    void independentOfOrderAndPartitioning() {
        List<String> docs = corpus(2000);
        CalibrationSplit split = new CalibrationSplit(17, 0.1);
        Set<String> heldOut = docs.stream().filter(split::isHeldOut).collect(Collectors.toCollection(TreeSet::new));

        List<String> shuffled = new ArrayList<>(docs);
        Collections.shuffle(shuffled, new Random(3));
        // "partitions": 7 interleaved slices of the shuffled order, each split on its own
        Set<String> fromPartitions = new TreeSet<>();
        for (int p = 0; p < 7; p++) {
            for (int i = p; i < shuffled.size(); i += 7) {
                if (new CalibrationSplit(17, 0.1).isHeldOut(shuffled.get(i))) {
                    fromPartitions.add(shuffled.get(i));
                }
            }
        }
        assertThat(fromPartitions).isEqualTo(heldOut);

        DocumentSource source = DocumentSources.of("shuffled", shuffled);
        assertThat(new TreeSet<>(split.heldOutPart(source).readAll(Integer.MAX_VALUE))).isEqualTo(heldOut);
        List<String> calibration = split.calibrationPart(source).readAll(Integer.MAX_VALUE);
        assertThat(calibration).hasSize(docs.size() - heldOut.size()).doesNotContainAnyElementsOf(heldOut);
    }

    @Test
    void fractionIsRespectedAndSeedMatters() {
        List<String> docs = corpus(20000);
        CalibrationSplit split = new CalibrationSplit(5, 0.1);
        long held = docs.stream().filter(split::isHeldOut).count();
        // binomial(20000, 0.1): mean 2000, sd 42.4; 6 sd either side
        assertThat(held).isBetween(1746L, 2254L);

        CalibrationSplit other = new CalibrationSplit(6, 0.1);
        long disagreements = docs.stream().filter(d -> split.isHeldOut(d) != other.isHeldOut(d)).count();
        assertThat(disagreements).isGreaterThan(1000); // independent splits disagree on ~18% of documents

        assertThat(docs.stream().noneMatch(new CalibrationSplit(5, 0.0)::isHeldOut)).isTrue();
        assertThat(docs.stream().allMatch(new CalibrationSplit(5, 1.0)::isHeldOut)).isTrue();
        assertThat(CalibrationSplit.withDefaultFraction(5).heldOutFraction()).isEqualTo(0.1);
    }

    @Test
    void invalidFractionIsTyped() {
        assertThatThrownBy(() -> new CalibrationSplit(1, 1.5)).isInstanceOf(CalibrationDataException.class)
                .hasMessageContaining("1.5");
        assertThatThrownBy(() -> new CalibrationSplit(1, Double.NaN)).isInstanceOf(CalibrationDataException.class);
        assertThatThrownBy(() -> new CalibrationSplit(1, -0.1)).isInstanceOf(CalibrationDataException.class);
    }
}
