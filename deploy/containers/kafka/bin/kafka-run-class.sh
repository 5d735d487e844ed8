#!/bin/bash
# kafka-run-class.sh <main-class> args...: a Kafka tool from the image's jars (short-lived JVM).
set -euo pipefail
cls="$1"
shift
exec java -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=/opt/kafka/config/kafka-tools-log4j2.properties" \
    -cp "/opt/kafka/libs/*" "$cls" "$@"
