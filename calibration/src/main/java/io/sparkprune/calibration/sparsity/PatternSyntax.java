package io.sparkprune.calibration.sparsity;

import io.sparkprune.calibration.SparsityPatternException;

import java.util.regex.Pattern;

/** Grammar of {@link SparsityPattern#parse(String)}. */
final class PatternSyntax {

    static final String ACCEPTED = "accepted forms are N:M (e.g. 2:4, 4:8), unstructured:P (e.g. unstructured:0.5) "
            + "and block:RxC:P (e.g. block:16x16:0.5), with 0 <= P < 1";
    static final Pattern NM = Pattern.compile("(\\d{1,9})\\s*:\\s*(\\d{1,9})");
    static final Pattern UNSTRUCTURED = Pattern.compile("unstructured\\s*:\\s*([0-9.eE+-]+)");
    static final Pattern BLOCK = Pattern.compile("block\\s*:\\s*(\\d{1,9})\\s*x\\s*(\\d{1,9})\\s*:\\s*([0-9.eE+-]+)");

    private PatternSyntax() {
    }

    static int parseInt(String digits) {
        return Integer.parseInt(digits);
    }

    static double parseFraction(String text, String spec) {
        try {
            return Double.parseDouble(text);
        } catch (NumberFormatException e) {
            throw new SparsityPatternException("cannot parse the sparsity '" + text + "' in pattern '" + spec + "'; "
                    + ACCEPTED);
        }
    }
}
