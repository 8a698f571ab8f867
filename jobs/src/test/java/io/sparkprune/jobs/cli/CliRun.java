package io.sparkprune.jobs.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/**
 * One in-process run of the {@code sparkprune} command line, as the CLI tests drive it.
 *
 * @param code exit code
 * @param out what the command printed to standard output
 * @param err what it printed to standard error
 */
public record CliRun(int code, String out, String err) {

    /**
     * @param args the command line after {@code sparkprune}
     * @return the exit code and both outputs
     */
    public static CliRun run(String... args) {
        CommandLine cl = SparkPruneCli.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new CliRun(code, out.toString(), err.toString());
    }
}
