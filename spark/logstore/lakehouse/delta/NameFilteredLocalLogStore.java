/*
 * Delta Lake's log store for local tables (file:), listing a table's _delta_log by file name first.
 *
 * Built by `make setup` (python spark/fetch_jars.py: lakehouse.spark.jars.build_log_store) into
 * .cache/spark-delta-logstore/<delta version>/, and named to Delta by the jobs' session
 * (spark.delta.logStore.file.impl, lakehouse.spark.session) when that jar exists.
 *
 * Why. Every snapshot refresh of a Delta table (several in each Silver + Gold pass) asks its log store for the log's
 * files from the last checkpoint on: listFrom("<log>/<checkpoint version>..."). Delta's HDFSLogStore answers that by
 * listing the whole _delta_log folder with a status (two stat calls, a qualified Path) for every file, then
 * keeping the names from the start. A table committing every 20 s keeps 3 to 4 days of commits, 14,000 to 18,000
 * files: that listing took 196 ms (0.9 on a fresh table), and a pass cost 1.5 to 1.7 times the fresh one after two
 * simulated days (BENCHMARKS.md, "A week of running"). Here the folder's names are read first (no stat) and only the
 * files from the start on, about ten, get a status.
 *
 * Same answer as HDFSLogStore: the files whose name sorts at or after the start's name, sorted by name, each with the
 * FileStatus the file system gives it (checksum files hidden as the checksummed local file system hides them; a
 * file deleted between the listing and its status is left out, as a listing taken a moment later would). Writes,
 * reads and everything else are HDFSLogStore's own (write: create a temporary file, then rename it without
 * overwriting, which is atomic on a local disk). Any other file system is answered by HDFSLogStore unchanged.
 */
package lakehouse.delta;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;

import io.delta.storage.HDFSLogStore;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumFileSystem;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;

public class NameFilteredLocalLogStore extends HDFSLogStore {

    public NameFilteredLocalLogStore(Configuration hadoopConf) {
        super(hadoopConf);
    }

    @Override
    public Iterator<FileStatus> listFrom(Path path, Configuration hadoopConf) throws IOException {
        FileSystem fs = path.getFileSystem(hadoopConf);
        File folder = localFile(fs, path.getParent());
        if (folder == null) {
            return super.listFrom(path, hadoopConf);  // not a local file system
        }
        if (!folder.isDirectory()) {
            throw new FileNotFoundException(String.format("No such file or directory: %s", path.getParent()));
        }
        String[] names = folder.list();
        if (names == null) {
            throw new IOException(String.format("Could not list %s", path.getParent()));
        }
        String start = path.getName();
        List<FileStatus> files = new ArrayList<>();
        for (String name : names) {
            if (name.compareTo(start) < 0 || isHiddenChecksum(fs, name)) {
                continue;
            }
            try {
                files.add(fs.getFileStatus(new Path(path.getParent(), name)));
            } catch (FileNotFoundException deletedMeanwhile) {
                // removed since the folder was read (Delta's own clean-up): not there any more
            }
        }
        files.sort(Comparator.comparing(status -> status.getPath().getName()));
        return files.iterator();
    }

    /** The local folder behind `folder` on a local file system (checksummed or raw); null on any other. */
    static File localFile(FileSystem fs, Path folder) {
        if (fs instanceof LocalFileSystem) {
            return ((LocalFileSystem) fs).pathToFile(folder);
        }
        if (fs instanceof RawLocalFileSystem) {
            return ((RawLocalFileSystem) fs).pathToFile(folder);
        }
        return null;
    }

    /** A checksummed local file system hides its .<name>.crc files from listings: so does this one. */
    static boolean isHiddenChecksum(FileSystem fs, String name) {
        return fs instanceof ChecksumFileSystem && ((ChecksumFileSystem) fs).isChecksumFile(new Path(name));
    }
}
