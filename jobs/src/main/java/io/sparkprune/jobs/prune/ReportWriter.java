package io.sparkprune.jobs.prune;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/** Writes a JSON document to a Hadoop path all-or-nothing (temporary name, then rename). */
final class ReportWriter {
    private ReportWriter() {
    }

    static void write(FileSystem fs, Path target, ObjectNode json) throws IOException {
        Path tmp = new Path(target.getParent(), "_tmp-" + target.getName());
        try (OutputStream o = fs.create(tmp, true)) {
            new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(o, json);
        }
        if (fs.exists(target)) {
            fs.delete(target, false);
        }
        if (!fs.rename(tmp, target)) {
            throw new IOException("cannot rename " + tmp + " to " + target);
        }
    }
}
