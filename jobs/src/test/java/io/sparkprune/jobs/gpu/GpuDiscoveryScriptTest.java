package io.sparkprune.jobs.gpu;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code conf/gpu-discovery.sh} against a fake {@code nvidia-smi}; its output is parsed with Spark's
 * own {@link ResourceInformation#parseJson(String)}, as Spark does with a discovery script's output.
 */
class GpuDiscoveryScriptTest {
    @TempDir
    Path tmp;

    private record Run(int exit, String stdout, String stderr) {
    }

    private static Path script() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path s = dir.resolve("conf").resolve("gpu-discovery.sh");
            if (Files.isRegularFile(s)) {
                return s;
            }
        }
        throw new AssertionError("conf/gpu-discovery.sh not found above " + Path.of("").toAbsolutePath());
    }

    private static String bash() {
        for (String b : new String[] {"/bin/bash", "/usr/bin/bash", "/usr/local/bin/bash"}) {
            if (Files.isExecutable(Path.of(b))) {
                return b;
            }
        }
        throw new AssertionError("bash not found");
    }

    /** A fake nvidia-smi that insists on the expected arguments and prints {@code output}. */
    private Path fakeNvidiaSmi(String output, int exit) throws IOException {
        Path bin = Files.createDirectories(tmp.resolve("bin"));
        Path smi = bin.resolve("nvidia-smi");
        Files.writeString(smi, "#!" + bash() + "\n"
                + "if [[ \"$*\" != \"--query-gpu=index --format=csv,noheader\" ]]; then echo \"bad args: $*\" >&2; exit 9; fi\n"
                + "printf '%s' '" + output + "'\nexit " + exit + "\n", StandardCharsets.UTF_8);
        Files.setPosixFilePermissions(smi, PosixFilePermissions.fromString("rwxr-xr-x"));
        return bin;
    }

    private Run run(Path pathDir) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(bash(), script().toString());
        // Only the fake (or an empty) directory: a real nvidia-smi on a GPU machine must not be found.
        pb.environment().put("PATH", pathDir.toString());
        Path out = tmp.resolve("out.txt");
        Path err = tmp.resolve("err.txt");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile());
        Process p = pb.start();
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    @Test
    void listsEveryIndexAsSparkResourceJson() throws Exception {
        Run r = run(fakeNvidiaSmi("0\n1\n2\n3\n", 0));
        assertThat(r.exit()).as(r.stderr()).isZero();
        ResourceInformation info = ResourceInformation.parseJson(r.stdout());
        assertThat(info.name()).isEqualTo("gpu");
        assertThat(List.of(info.addresses())).containsExactly("0", "1", "2", "3");
    }

    @Test
    void noGpuGivesAnEmptyList() throws Exception {
        Run r = run(fakeNvidiaSmi("", 0));
        assertThat(r.exit()).as(r.stderr()).isZero();
        assertThat(ResourceInformation.parseJson(r.stdout()).addresses()).isEmpty();
    }

    @Test
    void missingOrFailingNvidiaSmiIsAnError() throws Exception {
        Run missing = run(Files.createDirectories(tmp.resolve("empty")));
        assertThat(missing.exit()).isNotZero();
        assertThat(missing.stderr()).contains("nvidia-smi is not on PATH");
        assertThat(missing.stdout()).isEmpty();

        Run failing = run(fakeNvidiaSmi("NVIDIA-SMI has failed because it couldn't communicate with the driver", 9));
        assertThat(failing.exit()).isNotZero();
        assertThat(failing.stdout()).isEmpty();

        Run garbage = run(fakeNvidiaSmi("0\nNo devices were found\n", 0));
        assertThat(garbage.exit()).isNotZero();
        assertThat(garbage.stderr()).contains("unexpected line from nvidia-smi");
    }
}
