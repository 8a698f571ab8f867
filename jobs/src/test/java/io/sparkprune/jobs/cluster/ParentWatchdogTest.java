package io.sparkprune.jobs.cluster;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A child JVM under {@link ParentWatchdog} exits when its standard input closes (parent gone). */
class ParentWatchdogTest {

    /** Main class that would run forever. */
    public static final class Forever {
        private Forever() {
        }

        /**
         * @param args ignored
         * @throws InterruptedException never in practice
         */
        public static void main(String[] args) throws InterruptedException {
            System.out.println("running");
            System.out.flush();
            Thread.sleep(Long.MAX_VALUE);
        }
    }

    @Test
    void childExitsWhenStdinCloses() throws Exception {
        Process p = new ProcessBuilder(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx32m", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                ParentWatchdog.class.getName(), Forever.class.getName()))
                .redirectErrorStream(true).start();
        try {
            byte[] firstLine = p.getInputStream().readNBytes("running".length());
            assertThat(new String(firstLine)).isEqualTo("running");
            assertThat(p.isAlive()).isTrue();
            p.getOutputStream().close();
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("child exited after stdin closed").isTrue();
            assertThat(p.exitValue()).isEqualTo(ParentWatchdog.ORPHAN_EXIT_CODE);
        } finally {
            p.destroyForcibly();
        }
    }
}
