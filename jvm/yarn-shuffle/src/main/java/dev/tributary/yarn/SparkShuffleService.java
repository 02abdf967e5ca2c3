package dev.tributary.yarn;

import java.nio.ByteBuffer;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.server.api.ApplicationInitializationContext;
import org.apache.hadoop.yarn.server.api.ApplicationTerminationContext;
import org.apache.hadoop.yarn.server.api.AuxiliaryService;
import org.apache.hadoop.yarn.server.api.ContainerInitializationContext;
import org.apache.hadoop.yarn.server.api.ContainerTerminationContext;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.server.TransportServer;
import org.apache.spark.network.shuffle.ExternalBlockHandler;
import org.apache.spark.network.util.MapConfigProvider;
import org.apache.spark.network.util.TransportConf;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Spark's external shuffle service as a NodeManager aux service (yarn.nodemanager.aux-services=spark_shuffle).
 *
 * <p>Executors that YARN starts register their shuffle files here (spark.shuffle.service.enabled=true), so dynamic
 * allocation can release an executor without losing the shuffle output it wrote: other executors fetch those
 * blocks from this server instead. The server is Spark's own {@link ExternalBlockHandler} on Spark's transport
 * layer; this class only ties its lifecycle to the NodeManager's and forgets an application when YARN ends it.
 *
 * <p>Settings come from the NodeManager's configuration (yarn-site.xml), under Spark's names:
 * {@code spark.shuffle.service.port} (default 7337) and the {@code spark.shuffle.*} transport settings. What this
 * stand-in does not do, unlike Spark's YarnShuffleService: SASL authentication ({@code spark.authenticate}, which
 * it refuses at start rather than ignore), recovery of registrations across a NodeManager restart, and push-based
 * shuffle merging.
 */
public class SparkShuffleService extends AuxiliaryService {
  static final String PORT_KEY = "spark.shuffle.service.port";
  static final int DEFAULT_PORT = 7337;
  private static final Logger LOG = LoggerFactory.getLogger(SparkShuffleService.class);

  private ExternalBlockHandler blockHandler;
  private TransportServer server;

  public SparkShuffleService() {
    super("spark_shuffle");
  }

  @Override
  protected void serviceInit(Configuration conf) throws Exception {
    if (conf.getBoolean("spark.authenticate", false)) {
      throw new IllegalArgumentException("spark_shuffle: spark.authenticate=true is not supported by "
          + SparkShuffleService.class.getName() + "; use Spark's YarnShuffleService (spark-<version>-yarn-shuffle.jar)"
          + " on a cluster that authenticates shuffle clients");
    }
    Map<String, String> settings = new HashMap<>();
    for (Map.Entry<String, String> entry : conf) {
      settings.put(entry.getKey(), entry.getValue());
    }
    TransportConf transportConf = new TransportConf("shuffle", new MapConfigProvider(settings));
    blockHandler = new ExternalBlockHandler(transportConf, null);
    TransportContext context = new TransportContext(transportConf, blockHandler, true);
    int port = conf.getInt(PORT_KEY, DEFAULT_PORT);
    server = context.createServer(port, Collections.emptyList());
    LOG.info("spark_shuffle: Spark's external shuffle service listens on port {}", server.getPort());
    super.serviceInit(conf);
  }

  @Override
  public void initializeApplication(ApplicationInitializationContext context) {
    LOG.info("spark_shuffle: application {} started", context.getApplicationId());
  }

  @Override
  public void stopApplication(ApplicationTerminationContext context) {
    String appId = context.getApplicationId().toString();
    // YARN deletes the application's local directories itself; the handler only forgets its executors.
    blockHandler.applicationRemoved(appId, false);
    LOG.info("spark_shuffle: application {} stopped; its executors' shuffle files are forgotten", appId);
  }

  @Override
  public void initializeContainer(ContainerInitializationContext context) {
    LOG.debug("spark_shuffle: container {} started", context.getContainerId());
  }

  @Override
  public void stopContainer(ContainerTerminationContext context) {
    LOG.debug("spark_shuffle: container {} stopped", context.getContainerId());
  }

  @Override
  public ByteBuffer getMetaData() {
    return ByteBuffer.allocate(0);
  }

  @Override
  protected void serviceStop() throws Exception {
    if (server != null) {
      server.close();
    }
    if (blockHandler != null) {
      blockHandler.close();
    }
    super.serviceStop();
  }
}
