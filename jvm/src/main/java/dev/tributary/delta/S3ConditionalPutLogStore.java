package dev.tributary.delta;

import io.delta.storage.HadoopFileSystemLogStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.util.Iterator;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * A Delta LogStore for S3 and S3-compatible stores that is safe with writers in several JVMs (clusters).
 *
 * <p>Delta commits version N by creating {@code _delta_log/N.json}, and two writers must never both succeed.
 * Delta's {@code S3SingleDriverLogStore} only excludes writers inside one JVM; the ingest job and the stream are
 * separate Spark applications writing the same bronze table. S3 (since August 2024) and the Versity S3 Gateway of
 * the local clusters support conditional writes: a PUT with {@code If-None-Match: *} fails with 412 when the key
 * exists. Hadoop 3.5's S3A exposes that as the mandatory create option {@code
 * fs.option.create.conditional.overwrite}. A lost race surfaces as {@link FileAlreadyExistsException}, which
 * Delta answers by checking for conflicts and retrying at the next version; nothing is overwritten. If the store
 * or the client cannot make the conditional write, {@code build()} fails instead of writing unsafely.
 *
 * <p>Enable with {@code spark.delta.logStore.s3a.impl=dev.tributary.delta.S3ConditionalPutLogStore}
 * (the profiles do). See docs/adr/0007-object-store.md.
 */
public class S3ConditionalPutLogStore extends HadoopFileSystemLogStore {
  /** The S3A create option that sends {@code If-None-Match: *} (Hadoop 3.5, HADOOP-19256). */
  public static final String CONDITIONAL_CREATE = "fs.option.create.conditional.overwrite";

  public S3ConditionalPutLogStore(Configuration hadoopConf) {
    super(hadoopConf);
  }

  @Override
  public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration hadoopConf)
      throws IOException {
    StringBuilder body = new StringBuilder();
    while (actions.hasNext()) {
      body.append(actions.next()).append('\n');
    }
    byte[] bytes = body.toString().getBytes(StandardCharsets.UTF_8);
    FileSystem fs = path.getFileSystem(hadoopConf);
    if (overwrite) {
      try (FSDataOutputStream out = fs.createFile(path).overwrite(true).build()) {
        out.write(bytes);
      }
      return;
    }
    try (FSDataOutputStream out =
        (FSDataOutputStream) fs.createFile(path).overwrite(false).must(CONDITIONAL_CREATE, true).build()) {
      out.write(bytes);
    } catch (org.apache.hadoop.fs.FileAlreadyExistsException e) {
      throw alreadyExists(path, e);
    } catch (IOException e) {
      // S3A reports 412 Precondition Failed (and 409 ConditionalRequestConflict, a concurrent create of the same
      // key) as RemoteFileChangedException: another writer committed this version first.
      if ("RemoteFileChangedException".equals(e.getClass().getSimpleName())) {
        throw alreadyExists(path, e);
      }
      throw e;
    }
  }

  private static FileAlreadyExistsException alreadyExists(Path path, Exception cause) {
    FileAlreadyExistsException e = new FileAlreadyExistsException(path.toString(), null,
        "another writer committed this Delta version first (conditional create refused)");
    e.initCause(cause);
    return e;
  }

  @Override
  public Boolean isPartialWriteVisible(Path path, Configuration hadoopConf) {
    return false; // an S3 PUT becomes visible whole or not at all
  }
}
