package io.sparkprune.jobs.prune;

import java.io.Serializable;
import java.util.Map;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;

/**
 * A Hadoop {@link Configuration} that travels to executors: the driver's entries (including
 * {@code spark.hadoop.*} settings such as {@code fs.s3a.*} credentials providers) copied into a map
 * and rebuilt on the other side.
 */
public final class HadoopConf implements Serializable {
    private static final long serialVersionUID = 1L;

    private final TreeMap<String, String> entries = new TreeMap<>();

    /** @param conf the configuration to copy (its current entries, defaults included) */
    public HadoopConf(Configuration conf) {
        for (Map.Entry<String, String> e : conf) {
            entries.put(e.getKey(), e.getValue());
        }
    }

    /** @return a new Configuration holding the same entries (defaults not re-read) */
    public Configuration get() {
        Configuration c = new Configuration(false);
        entries.forEach(c::set);
        return c;
    }
}
