#!/usr/bin/env bash
# Runs any Kafka CLI tool from the cached Kafka jars (no Kafka install needed):
#
#   scripts/kafka-tool.sh <alias|main-class> [tool arguments...]
#
# aliases:
#   topics              org.apache.kafka.tools.TopicCommand                        (kafka-topics.sh)
#   configs             kafka.admin.ConfigCommand                                  (kafka-configs.sh)
#   consumer-groups     org.apache.kafka.tools.consumer.group.ConsumerGroupCommand (kafka-consumer-groups.sh)
#   console-consumer    org.apache.kafka.tools.consumer.ConsoleConsumer           (kafka-console-consumer.sh)
#   console-producer    org.apache.kafka.tools.ConsoleProducer                     (kafka-console-producer.sh)
#   metadata-quorum     org.apache.kafka.tools.MetadataQuorumCommand               (kafka-metadata-quorum.sh)
#   get-offsets         org.apache.kafka.tools.GetOffsetShell                      (kafka-get-offsets.sh)
#   broker-api-versions org.apache.kafka.tools.BrokerApiVersionsCommand            (kafka-broker-api-versions.sh)
#   features            org.apache.kafka.tools.FeatureCommand                      (kafka-features.sh)
#   storage             kafka.tools.StorageTool                                    (kafka-storage.sh)
#
# The local cluster: --bootstrap-server 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
# examples:
#   scripts/kafka-tool.sh topics --bootstrap-server 127.0.0.1:9092 --list
#   scripts/kafka-tool.sh topics --bootstrap-server 127.0.0.1:9092 --describe --topic task.created
#   scripts/kafka-tool.sh console-consumer --bootstrap-server 127.0.0.1:9092 --topic task.created \
#       --from-beginning --property print.key=true --property print.headers=true
#   scripts/kafka-tool.sh consumer-groups --bootstrap-server 127.0.0.1:9092 --describe --all-groups
#   scripts/kafka-tool.sh metadata-quorum --bootstrap-server 127.0.0.1:9092 describe --status
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
fi

tool="$1"
shift
case "$tool" in
topics) cls=org.apache.kafka.tools.TopicCommand ;;
configs) cls=kafka.admin.ConfigCommand ;;
consumer-groups) cls=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
console-consumer) cls=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
console-producer) cls=org.apache.kafka.tools.ConsoleProducer ;;
metadata-quorum) cls=org.apache.kafka.tools.MetadataQuorumCommand ;;
get-offsets) cls=org.apache.kafka.tools.GetOffsetShell ;;
broker-api-versions) cls=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
features) cls=org.apache.kafka.tools.FeatureCommand ;;
storage) cls=kafka.tools.StorageTool ;;
*.*) cls="$tool" ;;
*) die "unknown tool '$tool' (an alias from --help, or a fully qualified main class)" ;;
esac

if [[ ! -f "$KAFKA_FETCHED_MARKER" ]]; then
    "$SCRIPTS_DIR/kafka.sh" fetch
fi
kafka_tool "$cls" "$@"
