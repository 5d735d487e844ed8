"""Create the ACLs `todoctl acls` prints (stdin) on the secured local cluster, as its admin.

Lines: `<service> <topic|group> <literal|prefixed> <name> <read|write>`. Creating an ACL that
exists is a no-op, so this runs at every `cluster.sh up`. Run by scripts/kafka-security.sh.
"""

import os
import sys

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
PATTERN = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
OPERATION = {"read": AclOperation.READ, "write": AclOperation.WRITE}


def main() -> int:
    security = os.environ["KAFKA_SECURITY_DIR"]
    with open(os.path.join(security, "admin.password"), encoding="utf-8") as f:
        password = f.read().strip()
    admin = AdminClient(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"],
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin",
            "sasl.password": password,
            "ssl.ca.location": os.path.join(security, "ca.pem"),
        }
    )
    bindings = []
    for line in sys.stdin:
        if not line.strip():
            continue
        service, kind, pattern, name, operation = line.split()
        bindings.append(
            AclBinding(
                RESOURCE[kind],
                name,
                PATTERN[pattern],
                f"User:{service}",
                "*",
                OPERATION[operation],
                AclPermissionType.ALLOW,
            )
        )
    failed = 0
    for binding, future in admin.create_acls(bindings, request_timeout=30).items():
        try:
            future.result()
        except Exception as e:  # one line per refused ACL, then a non-zero exit
            print(f"kafka-acls: {binding}: {e}", file=sys.stderr)
            failed += 1
    services = len({b.principal for b in bindings})
    print(f"ACLs: {len(bindings) - failed} granted to {services} service users, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
