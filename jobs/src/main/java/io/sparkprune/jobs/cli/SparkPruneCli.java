package io.sparkprune.jobs.cli;

import io.sparkprune.kernels.InvalidInputException;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Entry point of the {@code sparkprune} command line.
 *
 * <p>Errors are mapped to {@link ExitCodes}: usage errors print the message and the usage (2); an
 * {@link InvalidInputException} prints its message only, no stack trace (3); anything else is a
 * bug and prints the stack trace (1). A failed quality gate is not an error: the command finishes,
 * writes its report and returns {@link ExitCodes#QUALITY_GATE_FAILED} (4).
 */
@Command(name = "sparkprune", mixinStandardHelpOptions = true, versionProvider = SparkPruneCli.Version.class,
        description = "Prune and quantize transformer checkpoints with SparseGPT on Apache Spark.",
        subcommands = {PruneCommand.class, InspectCommand.class, ConvertCommand.class, DecompressCommand.class,
                QuickstartCommand.class, ValidateCommand.class, BenchCommand.class, GenerateCommand.class,
                CommandLine.HelpCommand.class},
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:success", "1:a bug in SparkPrune (stack trace printed)", "2:bad command line",
                "3:bad input (malformed checkpoint, config, recipe or data; the message names it)",
                "4:a quality gate failed (outputs and report written; the report marks the failed gates)"})
public final class SparkPruneCli implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing subcommand");
    }

    /**
     * Builds the configured command line, for {@link #main} and for tests.
     *
     * @return a picocli command line with SparkPrune's exit-code mapping
     */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new SparkPruneCli());
        PruneCommand.addRecipeFlags(cl.getSubcommands().get("prune").getCommandSpec());
        PruneCommand.addRecipeFlags(cl.getSubcommands().get("validate").getCommandSpec());
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            PrintWriter err = commandLine.getErr();
            if (ex instanceof InvalidInputException) {
                err.println("sparkprune: error: " + ex.getMessage());
                err.flush();
                return ExitCodes.BAD_INPUT;
            }
            err.println("sparkprune: internal error (please report it with this output):");
            ex.printStackTrace(err);
            err.flush();
            return ExitCodes.BUG;
        });
        return cl;
    }

    /**
     * Runs the CLI and exits the JVM with its exit code.
     *
     * @param args command line arguments
     */
    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** Reports the version from the jar manifest. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = SparkPruneCli.class.getPackage().getImplementationVersion();
            return new String[] {"sparkprune " + (v == null ? "(development build)" : v)};
        }
    }
}
