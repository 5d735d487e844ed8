"""Read one message with Confluent's own Python client and AvroDeserializer, print it as JSON.

Used by the events crate's interop test: what our Rust producer writes must be readable by a
standard Confluent-compatible deserializer in another language.
"""
import argparse
import json
import sys

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partition", type=int, required=True)
    p.add_argument("--offset", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": a.registry}))
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "interop-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(a.topic, a.partition, a.offset)])
    try:
        msg = consumer.poll(a.timeout)
        if msg is None:
            print(f"no message at {a.topic}/{a.partition}@{a.offset}", file=sys.stderr)
            return 1
        if msg.error():
            print(msg.error(), file=sys.stderr)
            return 1
        value = deserializer(msg.value(), SerializationContext(a.topic, MessageField.VALUE))
        json.dump({"key": msg.key().decode(), "value": value}, sys.stdout)
        return 0
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())
