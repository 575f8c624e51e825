// Reads a topic as a trust's Java integration team would: every record's value through the
// official CloudEvents Java SDK's Kafka deserializer (io.cloudevents.kafka.CloudEventDeserializer).
//
//     java -cp '<jars>/*' Reader.java BOOTSTRAP TOPIC
//
// Run with Java's single-file source launcher (no build step); podlink_devtools.cloudevents_reader
// resolves the jars that pom.xml beside this file pins. It reads every partition from the
// beginning up to the end offsets taken at the start, with no consumer group (nothing is
// committed, nothing changes for other readers), and prints one JSON line per record:
//     {"partition":0,"offset":3,"ok":true,"id":"...","type":"...","subject":"..."}
//     {"partition":0,"offset":4,"ok":false,"error":"..."}
// A record the SDK refuses is a line, not a failure: the exit status is 0 once the topic is read.

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.CloudEventDeserializer;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class Reader {
    private static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Reader BOOTSTRAP TOPIC");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        // Reading must not create a missing topic with the broker's defaults before podlink does.
        config.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
        try (KafkaConsumer<byte[], byte[]> consumer =
                     new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer());
             CloudEventDeserializer cloudEvents = new CloudEventDeserializer()) {
            cloudEvents.configure(Map.of(), false);
            List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
                    .map(info -> new TopicPartition(topic, info.partition()))
                    .toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            while (partitions.stream().anyMatch(tp -> consumer.position(tp) < ends.get(tp))) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    TopicPartition tp = new TopicPartition(record.topic(), record.partition());
                    if (record.offset() < ends.get(tp)) {  // later records arrived after the start
                        System.out.println(JSON.writeValueAsString(read(cloudEvents, record)));
                    }
                }
            }
        }
    }

    private static ObjectNode read(CloudEventDeserializer cloudEvents, ConsumerRecord<byte[], byte[]> record) {
        ObjectNode line = JSON.createObjectNode();
        line.put("partition", record.partition());
        line.put("offset", record.offset());
        try {
            CloudEvent event = cloudEvents.deserialize(record.topic(), record.headers(), record.value());
            line.put("ok", true);
            line.put("id", event.getId());
            line.put("type", event.getType());
            line.put("subject", event.getSubject());
        } catch (RuntimeException refused) {
            line.put("ok", false);
            line.put("error", String.valueOf(refused.getMessage()));
        }
        return line;
    }
}
