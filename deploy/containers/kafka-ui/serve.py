"""The Kafka UI of the task platform: kaskade's admin mode (topics, partitions, configs, consumer
groups with lag) served to the browser by textual-serve.

Configured from the environment, with the names kafbat/kafka-ui reads, so docker-compose.kafka.yml
gives both images the same block:

  KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS   brokers (required)
  KAFKA_CLUSTERS_0_SCHEMAREGISTRY     Confluent-compatible registry URL (Apicurio: .../apis/ccompat/v7),
                                      written to kaskade's [registry] section
  SERVER_PORT                         port (8080)
  KAFKA_UI_HOST                       address to bind (127.0.0.1; the image sets 0.0.0.0)
  KAFKA_UI_PUBLIC_URL                 the URL the browser uses (its WebSocket follows it)

It has no login: bind it to 127.0.0.1, or publish the container's port on 127.0.0.1 only.
"""

import os
import sys
import shlex
import tempfile

from textual_serve.server import Server


def main() -> None:
    brokers = os.environ["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"]
    registry = os.environ.get("KAFKA_CLUSTERS_0_SCHEMAREGISTRY", "")
    host = os.environ.get("KAFKA_UI_HOST", "127.0.0.1")
    port = int(os.environ.get("SERVER_PORT", "8080"))
    public_url = os.environ.get("KAFKA_UI_PUBLIC_URL") or f"http://127.0.0.1:{port}"

    config = tempfile.NamedTemporaryFile("w", prefix="kaskade-", suffix=".ini", delete=False)
    config.write(f"[kafka]\nbootstrap.servers = {brokers}\n")
    if registry:
        config.write(f"[registry]\nurl = {registry}\n")
    config.close()

    kaskade = os.path.join(os.path.dirname(sys.executable), "kaskade")
    if not os.path.exists(kaskade):
        kaskade = "kaskade"
    command = f"{shlex.quote(kaskade)} admin --config-file {shlex.quote(config.name)} --refresh-interval 5"
    print(f"Kafka UI (kaskade admin) on http://{host}:{port} for {brokers}, public URL {public_url}", flush=True)
    Server(command, host=host, port=port, title="Kafka UI (kaskade)", public_url=public_url).serve()


if __name__ == "__main__":
    main()
