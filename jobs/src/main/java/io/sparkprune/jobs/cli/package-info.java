/**
 * The {@code sparkprune} command line (picocli): {@code inspect}, {@code convert},
 * {@code quickstart}. Exit codes are listed in {@link io.sparkprune.jobs.cli.ExitCodes}.
 */
package io.sparkprune.jobs.cli;
