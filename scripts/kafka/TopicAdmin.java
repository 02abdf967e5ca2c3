// Topic administration for scripts/kafka_broker.py with Kafka's own AdminClient (kafka-clients, on the classpath).
// Run by the JDK's source launcher, nothing compiled ahead:
//   java -cp '<kafka jars>/*' scripts/kafka/TopicAdmin.java BOOTSTRAP create TOPIC PARTITIONS | delete TOPIC | list
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;

public class TopicAdmin {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: TopicAdmin BOOTSTRAP create TOPIC PARTITIONS | delete TOPIC | list");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        try (Admin admin = Admin.create(props)) {
            switch (args[1]) {
                case "create" -> admin.createTopics(
                        List.of(new NewTopic(args[2], Integer.parseInt(args[3]), (short) 1))).all().get();
                case "delete" -> admin.deleteTopics(List.of(args[2])).all().get();
                case "list" -> admin.listTopics().names().get().stream().sorted().forEach(System.out::println);
                default -> {
                    System.err.println("unknown action " + args[1]);
                    System.exit(2);
                }
            }
        }
    }
}
