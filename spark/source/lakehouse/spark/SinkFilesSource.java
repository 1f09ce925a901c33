/*
 * A streaming source of the files a Spark file sink committed (Bronze's Parquet folder), reading its _spark_metadata
 * log incrementally: each trigger reads only the batches the sink committed since the last one.
 *
 * Built by `make setup` (python spark/fetch_jars.py: lakehouse.spark.jars) into .cache/spark-sink-files/<Spark
 * version>/ and used by Silver's job (lakehouse.silver.job.read_bronze) when that jar exists:
 *
 *     spark.readStream.format("lakehouse.spark.SinkFilesSource").option("maxFilesPerTrigger", "4").load(bronze)
 *
 * gives rows (path string, size long, file_index long), one per committed file, in the order the sink committed them;
 * the caller reads the files (Silver's foreachBatch reads them as Parquet).
 *
 * Why. Spark 3.5's own file source, reading a file sink's folder, builds the list of every file the sink ever
 * committed at every trigger (MetadataLogFileIndex over the latest compact file, which lists them all): after a week
 * of 20-s Bronze batches that is 30,000 entries and about 400 ms a trigger, growing by ~60 ms a day for good
 * (BENCHMARKS.md, "A week of running"). Its own checkpoint log also records every file it has seen.
 *
 * How. A file sink's log holds, per batch id N, a file "N" listing the batch's files, and every 10th batch a file
 * "N.compact" listing every file of batches 0..N in commit order (the compaction never reorders or drops entries
 * while the sink's `retention` option is unset); batch files before the compaction that precedes the last
 * minBatchesToRetain batches (100 in the project's sessions) are deleted, once older than cleanupDelay (10 min). So every committed file has a stable position, its index in that order, and an offset here is the index of the
 * next file to read ({"files": N}). This source keeps the log's entries from the last committed offset on, and at
 * each trigger lists the log folder's names and reads only the batch files after the last batch it read; for a
 * compacted batch, only the compact file's entries after the known ones are parsed (the lines before are skipped
 * unparsed). When it has fallen behind the sink's deletions (stopped for a while, or just started), it
 * reads the latest compact file once, from the offset's position on.
 *
 * Checks: an entry that is not an "add" (the sink's retention or another writer's deletions would shift positions),
 * or a compact file whose entry at a known position is not the file this source saw there, fails the query with a
 * message, never skipping or repeating a file silently.
 *
 * A checkpoint written by Spark's own file source over the same folder ({"logOffset": N}) is taken over: its offset
 * becomes the position of the first committed file that source had not read by its batch N (read from its log in
 * the checkpoint, sources/<n>/); files after that it had read already are read again (Silver's writes match on each
 * row's identity, so a file read twice inserts nothing twice).
 *
 * Bounds: ReadLimit.maxFiles (option maxFilesPerTrigger) per micro-batch; Trigger.AvailableNow reads what the log
 * holds when the query starts, in batches of that bound. The driver holds at most maxFilesHeld (50,000) entries
 * read ahead of the committed offset, however long the log: Spark's own file source held every file ever committed.
 */
package lakehouse.spark;

import java.io.BufferedReader;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.connector.read.streaming.MicroBatchStream;
import org.apache.spark.sql.connector.read.streaming.Offset;
import org.apache.spark.sql.connector.read.streaming.ReadAllAvailable;
import org.apache.spark.sql.connector.read.streaming.ReadLimit;
import org.apache.spark.sql.connector.read.streaming.ReadMaxFiles;
import org.apache.spark.sql.connector.read.streaming.ReportsSourceMetrics;
import org.apache.spark.sql.connector.read.streaming.SupportsAdmissionControl;
import org.apache.spark.sql.connector.read.streaming.SupportsTriggerAvailableNow;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;
import org.apache.spark.unsafe.types.UTF8String;

public class SinkFilesSource implements TableProvider {

    /** At most this many entries read ahead of the committed offset are held (about 20 MB of paths); a catch-up over
     * more reads the log's rest at later triggers. Option maxFilesHeld. */
    public static final int DEFAULT_MAX_FILES_HELD = 50_000;

    public static final StructType SCHEMA = new StructType()
            .add("path", DataTypes.StringType, false)
            .add("size", DataTypes.LongType, false)
            .add("file_index", DataTypes.LongType, false);

    @Override
    public StructType inferSchema(CaseInsensitiveStringMap options) {
        return SCHEMA;
    }

    @Override
    public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
        String path = properties.get("path");
        if (path == null || path.isEmpty()) {
            throw new IllegalArgumentException("SinkFilesSource needs the file sink's folder: .load(<folder>)");
        }
        return new FilesTable(path);
    }

    static int positive(CaseInsensitiveStringMap options, String key, int otherwise) {
        String value = options.get(key);
        if (value == null) {
            return otherwise;
        }
        try {
            int number = Integer.parseInt(value.trim());
            if (number >= 1) {
                return number;
            }
        } catch (NumberFormatException ignored) {
            // the message below
        }
        throw new IllegalArgumentException(key + " must be a positive whole number: " + value);
    }

    /** The sink's folder as a table that can only be read as a stream. */
    static final class FilesTable implements Table, SupportsRead {
        private final String folder;

        FilesTable(String folder) {
            this.folder = folder;
        }

        @Override
        public String name() {
            return "sink files of " + folder;
        }

        @Override
        public StructType schema() {
            return SCHEMA;
        }

        @Override
        public java.util.Set<TableCapability> capabilities() {
            return EnumSet.of(TableCapability.MICRO_BATCH_READ);
        }

        @Override
        public ScanBuilder newScanBuilder(CaseInsensitiveStringMap options) {
            int maxFiles = positive(options, "maxFilesPerTrigger", 0);
            int maxHeld = positive(options, "maxFilesHeld", DEFAULT_MAX_FILES_HELD);
            return () -> new Scan() {
                @Override
                public StructType readSchema() {
                    return SCHEMA;
                }

                @Override
                public MicroBatchStream toMicroBatchStream(String checkpointLocation) {
                    Configuration conf = SparkSession.active().sparkContext().hadoopConfiguration();
                    return new FilesStream(new Path(folder), maxFiles, maxHeld, new Path(checkpointLocation), conf);
                }
            };
        }
    }

    /** The position of the next committed file to read. */
    static final class FilesOffset extends Offset {
        final long files;

        FilesOffset(long files) {
            this.files = files;
        }

        @Override
        public String json() {
            return "{\"files\":" + files + "}";
        }
    }

    /** One committed file: its path (as Hadoop writes it), size, and position in commit order. */
    static final class Entry implements Serializable {
        final String path;
        final long size;
        final long index;

        Entry(String path, long size, long index) {
            this.path = path;
            this.size = size;
            this.index = index;
        }
    }

    /** The files of one micro-batch, read as rows by one task. */
    static final class FilesPartition implements InputPartition {
        final Entry[] entries;

        FilesPartition(Entry[] entries) {
            this.entries = entries;
        }
    }

    static final class FilesReaderFactory implements PartitionReaderFactory {
        @Override
        public PartitionReader<InternalRow> createReader(InputPartition partition) {
            Entry[] entries = ((FilesPartition) partition).entries;
            return new PartitionReader<InternalRow>() {
                private int next = -1;

                @Override
                public boolean next() {
                    next += 1;
                    return next < entries.length;
                }

                @Override
                public InternalRow get() {
                    Entry e = entries[next];
                    return new GenericInternalRow(new Object[] {UTF8String.fromString(e.path), e.size, e.index});
                }

                @Override
                public void close() {
                }
            };
        }
    }

    /** The stream over one sink folder's log. Driver side only; its state is what it read since the query started. */
    static final class FilesStream implements MicroBatchStream, SupportsAdmissionControl, SupportsTriggerAvailableNow,
            ReportsSourceMetrics {
        private static final ObjectMapper JSON = new ObjectMapper();
        private final Path log;
        private final int maxFiles;
        private final int maxHeld;
        private final Path checkpoint;
        private final Configuration conf;
        // The entries read so far at positions >= keepFrom, in order; `known` is the number of files committed
        // through sink batch `throughBatch` (the position after its last file); lastPath is the file at known - 1.
        private final ArrayDeque<Entry> kept = new ArrayDeque<>();
        private long keepFrom = 0;
        private long known = 0;
        private long throughBatch = -1;
        private String lastPath = null;
        private boolean midCompact = false;  // the newest compact file was read only in part (maxFilesHeld)
        private long availableNowEnd = -1;
        private final Map<Long, Long> legacyOffsets = new HashMap<>();

        FilesStream(Path folder, int maxFiles, int maxHeld, Path checkpoint, Configuration conf) {
            this.log = new Path(folder, "_spark_metadata");
            this.maxFiles = maxFiles;
            // held: the last batch's files (Spark commits a batch after planning the next) and the next one's
            this.maxHeld = Math.max(maxHeld, 2 * maxFiles);
            this.checkpoint = checkpoint;
            this.conf = conf;
        }

        @Override
        public Offset initialOffset() {
            return new FilesOffset(0);
        }

        @Override
        public Offset deserializeOffset(String json) {
            try {
                JsonNode node = JSON.readTree(json);
                if (node.has("files")) {
                    return new FilesOffset(node.get("files").asLong());
                }
                if (node.has("logOffset")) {  // written by Spark's own file source: take it over
                    long batch = node.get("logOffset").asLong();
                    Long files = legacyOffsets.get(batch);
                    if (files == null) {
                        files = firstUnreadByLegacySource(batch);
                        legacyOffsets.put(batch, files);
                    }
                    return new FilesOffset(files);
                }
            } catch (IOException e) {
                throw new IllegalStateException("unreadable offset " + json + " in the checkpoint: " + e, e);
            }
            throw new IllegalStateException("unknown offset " + json + " in the checkpoint (not a sink files offset)");
        }

        @Override
        public ReadLimit getDefaultReadLimit() {
            return maxFiles > 0 ? ReadLimit.maxFiles(maxFiles) : ReadLimit.allAvailable();
        }

        @Override
        public Offset latestOffset() {
            throw new UnsupportedOperationException("latestOffset(start, limit) is the one to call");
        }

        @Override
        public void prepareForTriggerAvailableNow() {
            readFrom(Long.MAX_VALUE);  // count the committed files, keep none (latestOffset reads from its start)
            availableNowEnd = known;
        }

        @Override
        public Offset latestOffset(Offset startOffset, ReadLimit limit) {
            long start = ((FilesOffset) startOffset).files;
            if (keepFrom > start) {
                readFrom(start);
            } else {
                refresh();
            }
            if (start > known) {
                throw new IllegalStateException(String.format(
                        "the checkpoint has read %d files of %s, which lists only %d: the checkpoint belongs to "
                        + "another sink folder (or its log was replaced)", start, log.getParent(), known));
            }
            long end = availableNowEnd >= 0 ? Math.min(known, availableNowEnd) : known;
            if (limit instanceof ReadMaxFiles) {
                end = Math.min(end, start + ((ReadMaxFiles) limit).maxFiles());
            } else if (!(limit instanceof ReadAllAvailable)) {
                throw new UnsupportedOperationException("read limit " + limit + " is not supported");
            }
            return new FilesOffset(Math.max(start, end));
        }

        @Override
        public InputPartition[] planInputPartitions(Offset start, Offset end) {
            long from = ((FilesOffset) start).files;
            long to = ((FilesOffset) end).files;
            if (to <= from) {
                return new InputPartition[0];
            }
            if (keepFrom > from || known < to) {
                readFrom(from);  // a batch redone after a restart, before any latestOffset
            }
            if (known < to) {
                throw new IllegalStateException(String.format(
                        "%s lists %d committed files; the checkpoint's batch reads files %d to %d", log, known, from,
                        to - 1));
            }
            List<Entry> batch = new ArrayList<>();
            for (Entry e : kept) {
                if (e.index >= to) {
                    break;
                }
                if (e.index >= from) {
                    batch.add(e);
                }
            }
            if (batch.size() != to - from) {
                throw new IllegalStateException(String.format(
                        "lost track of %s: files %d to %d asked, %d held", log, from, to - 1, batch.size()));
            }
            return new InputPartition[] {new FilesPartition(batch.toArray(new Entry[0]))};
        }

        /** In each batch's progress (sources[].metrics): the committed files read from the log so far, and how many
         * of them are held ahead of the committed offset (at most maxFilesHeld). */
        @Override
        public Map<String, String> metrics(Optional<Offset> latestConsumedOffset) {
            Map<String, String> metrics = new HashMap<>();
            metrics.put("filesRead", Long.toString(known));
            metrics.put("filesHeld", Integer.toString(kept.size()));
            return metrics;
        }

        @Override
        public PartitionReaderFactory createReaderFactory() {
            return new FilesReaderFactory();
        }

        @Override
        public void commit(Offset end) {
            long upTo = ((FilesOffset) end).files;
            keepFrom = Math.max(keepFrom, upTo);
            while (!kept.isEmpty() && kept.peekFirst().index < keepFrom) {
                kept.pollFirst();
            }
        }

        @Override
        public void stop() {
            kept.clear();
        }

        @Override
        public String toString() {
            return "SinkFilesSource[" + log.getParent() + "]";
        }

        // -------------------------------------------------------------------------------------------------------------
        // Reading the sink's log

        /** Forget what was read and read the log again, keeping the entries from position `from` on. */
        private void readFrom(long from) {
            kept.clear();
            keepFrom = from;
            known = 0;
            throughBatch = -1;
            lastPath = null;
            midCompact = false;
            refresh();
        }

        /** Read the batches the sink committed since the last one read (none when there is no log yet). Invariant:
         * every committed entry at a position from keepFrom to known - 1 is in `kept`. */
        private void refresh() {
            try {
                for (int attempt = 0; ; attempt++) {
                    try {
                        readNewBatches(listLog());
                        return;
                    } catch (FileNotFoundException deletedMeanwhile) {
                        if (attempt >= 2) {
                            throw deletedMeanwhile;
                        }
                    }
                }
            } catch (IOException e) {
                throw new IllegalStateException("could not read " + log + ": " + e, e);
            }
        }

        /** Batch id -> is it a compact file, for the log's committed batch files. */
        private TreeMap<Long, Boolean> listLog() throws IOException {
            TreeMap<Long, Boolean> batches = new TreeMap<>();
            FileSystem fs = log.getFileSystem(conf);
            FileStatus[] statuses;
            try {
                statuses = fs.listStatus(log);
            } catch (FileNotFoundException noLogYet) {
                return batches;
            }
            for (FileStatus status : statuses) {
                String name = status.getPath().getName();
                boolean compact = name.endsWith(".compact");
                String id = compact ? name.substring(0, name.length() - ".compact".length()) : name;
                if (!id.isEmpty() && id.chars().allMatch(Character::isDigit)) {
                    batches.merge(Long.parseLong(id), compact, (a, b) -> a || b);
                }
            }
            return batches;
        }

        private void readNewBatches(TreeMap<Long, Boolean> batches) throws IOException {
            if (batches.isEmpty()) {
                return;
            }
            if (midCompact) {  // a compact file read in part (maxFilesHeld): go on in the newest one
                readCompact(latestCompact(batches, throughBatch + 1));
            }
            for (long b = throughBatch + 1; b <= batches.lastKey() && !midCompact && kept.size() < maxHeld; b++) {
                Boolean compact = batches.get(b);
                if (compact == null) {
                    // deleted after a compaction (this source fell behind, or has just started): the newest compact
                    // file lists every file through its batch
                    b = latestCompact(batches, b);
                    readCompact(b);
                } else if (compact) {
                    readCompact(b);
                } else {
                    readBatch(b);
                }
            }
        }

        private long latestCompact(TreeMap<Long, Boolean> batches, long atLeast) {
            for (Map.Entry<Long, Boolean> e : batches.descendingMap().entrySet()) {
                if (e.getValue() && e.getKey() >= atLeast) {
                    return e.getKey();
                }
            }
            throw new IllegalStateException(String.format(
                    "%s has no file for batch %d and no compact file after it", log, atLeast));
        }

        private void readBatch(long batch) throws IOException {
            try (BufferedReader in = open(new Path(log, Long.toString(batch)))) {
                checkVersion(in.readLine(), batch);
                for (String line = in.readLine(); line != null; line = in.readLine()) {
                    if (!line.isEmpty()) {
                        add(line, batch);
                    }
                }
            }
            throughBatch = batch;
        }

        /** The compact file of `batch`, which lists every file through that batch in order: the lines before position
         * max(known, keepFrom) are skipped unparsed (the one at known - 1 checked against the file this source saw
         * there), the rest read; once maxFilesHeld entries are held, the rest waits for a later refresh. */
        private void readCompact(long batch) throws IOException {
            Path file = new Path(log, batch + ".compact");
            long skip = Math.max(known, keepFrom);
            try (BufferedReader in = open(file)) {
                checkVersion(in.readLine(), batch);
                long position = 0;
                String line = in.readLine();
                String skipped = null;
                for (; line != null && position < skip; line = in.readLine()) {
                    if (line.isEmpty()) {
                        continue;
                    }
                    if (position == known - 1 && lastPath != null && !pathOf(JSON.readTree(line)).equals(lastPath)) {
                        throw new IllegalStateException(String.format(
                                "%s lists %s at position %d, where this source read %s: the sink log was rewritten "
                                + "(its retention option?)", file, pathOf(JSON.readTree(line)), position, lastPath));
                    }
                    skipped = line;
                    position++;
                }
                if (position < known) {
                    throw new IllegalStateException(String.format(
                            "%s lists %d files; this source read %d committed before it", file, position, known));
                }
                if (position > known) {  // counted, not held (before keepFrom)
                    known = position;
                    lastPath = pathOf(JSON.readTree(skipped));
                }
                midCompact = false;
                for (; line != null; line = in.readLine()) {
                    if (line.isEmpty()) {
                        continue;
                    }
                    if (kept.size() >= maxHeld) {
                        midCompact = true;
                        return;
                    }
                    add(line, batch);
                }
            }
            throughBatch = batch;
        }

        private void add(String line, long batch) throws IOException {
            JsonNode entry = JSON.readTree(line);
            String action = entry.has("action") ? entry.get("action").asText() : "add";
            if (!"add".equals(action)) {
                throw new IllegalStateException(String.format(
                        "%s batch %d holds a '%s' entry for %s: a sink log with deletions (its retention option) "
                        + "is not supported", log, batch, action, pathOf(entry)));
            }
            String path = pathOf(entry);
            if (known >= keepFrom) {
                kept.addLast(new Entry(hadoopPath(path), entry.get("size").asLong(), known));
            }
            known++;
            lastPath = path;
        }

        private static String pathOf(JsonNode entry) {
            return entry.get("path").asText();
        }

        private void checkVersion(String header, long batch) {
            if (header == null || !header.equals("v1")) {
                throw new IllegalStateException(String.format(
                        "%s batch %d: log version %s, this source reads v1", log, batch, header));
            }
        }

        private BufferedReader open(Path file) throws IOException {
            FileSystem fs = file.getFileSystem(conf);
            return new BufferedReader(new InputStreamReader(fs.open(file), StandardCharsets.UTF_8));
        }

        // -------------------------------------------------------------------------------------------------------------
        // Taking over a checkpoint of Spark's own file source

        /** The position of the first committed file that Spark's file source had not read by its batch `batch`,
         * from its log in this checkpoint (sources/<n>/: per batch, the files it read). */
        private long firstUnreadByLegacySource(long batch) throws IOException {
            Set<String> seen = new HashSet<>();
            FileSystem fs = checkpoint.getFileSystem(conf);
            FileStatus[] statuses;
            try {
                statuses = fs.listStatus(checkpoint);
            } catch (FileNotFoundException none) {
                statuses = new FileStatus[0];
            }
            TreeSet<Long> deltas = new TreeSet<>();
            long compact = -1;
            for (FileStatus status : statuses) {
                String name = status.getPath().getName();
                if (name.matches("\\d+\\.compact")) {
                    long id = Long.parseLong(name.substring(0, name.indexOf('.')));
                    if (id <= batch) {
                        compact = Math.max(compact, id);
                    }
                } else if (name.matches("\\d+")) {
                    deltas.add(Long.parseLong(name));
                }
            }
            List<Path> files = new ArrayList<>();
            if (compact >= 0) {
                files.add(new Path(checkpoint, compact + ".compact"));
            }
            for (long b : deltas.subSet(compact + 1, true, batch, true)) {
                files.add(new Path(checkpoint, Long.toString(b)));
            }
            for (Path file : files) {
                try (BufferedReader in = open(file)) {
                    in.readLine();  // its version
                    for (String line = in.readLine(); line != null; line = in.readLine()) {
                        if (!line.isEmpty()) {
                            JsonNode entry = JSON.readTree(line);
                            if (!entry.has("batchId") || entry.get("batchId").asLong() <= batch) {
                                seen.add(normalized(pathOf(entry)));
                            }
                        }
                    }
                }
            }
            // the sink's entries in order: the first one not seen
            long first = -1;
            for (long from = 0; first < 0; from = known) {  // maxFilesHeld entries at a time
                readFrom(from);
                for (Entry e : kept) {
                    if (!seen.contains(new Path(e.path).toUri().getPath())) {
                        first = e.index;
                        break;
                    }
                }
                if (kept.isEmpty()) {
                    first = known;  // it had read every committed file
                }
            }
            readFrom(Long.MAX_VALUE);  // hold nothing: the next latestOffset or plan reads from its own start
            return first;
        }

        /** The file's path as Hadoop and Spark's readers take it: the log holds it as a URI (a space as %20). */
        private static String hadoopPath(String uri) {
            try {
                return new Path(new URI(uri)).toString();
            } catch (URISyntaxException e) {
                throw new IllegalStateException("the sink log lists a file that is not a URI: " + uri, e);
            }
        }

        /** A file's path alone, decoded (logs write the same file as file:/a%20b, file:///a%20b). */
        private static String normalized(String uri) {
            try {
                return new URI(uri).getPath();
            } catch (URISyntaxException e) {
                return uri;
            }
        }
    }
}
