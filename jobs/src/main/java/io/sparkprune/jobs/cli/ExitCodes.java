package io.sparkprune.jobs.cli;

/** Process exit codes of {@code sparkprune}; README.md documents the same table. */
public final class ExitCodes {
    /** The command did what was asked. */
    public static final int OK = 0;
    /** A bug in SparkPrune: an unexpected exception (its stack trace is printed). */
    public static final int BUG = 1;
    /** Bad command line: unknown option, missing argument, bad value. */
    public static final int USAGE = 2;
    /** Bad input: a malformed checkpoint, config, recipe or data file (the message says which and how to fix it). */
    public static final int BAD_INPUT = 3;
    /**
     * A quality gate of the recipe failed ({@code gates}, {@code --max-layer-error}, ...): the outputs
     * and the report were written, and report.json / report.html mark the failed gates.
     */
    public static final int QUALITY_GATE_FAILED = 4;

    private ExitCodes() {
    }
}
