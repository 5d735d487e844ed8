#!/usr/bin/env bash
# The secured local cluster's credentials: a CA and the brokers' certificate (openssl), a SCRAM
# password per service and for the admin, the clients' settings, and the ACLs that give each
# service exactly its topics and its consumer groups (from the catalogue, via `todoctl acls`).
# Used by kafka.sh, cluster.sh and services.sh when KAFKA_SECURITY=sasl_ssl.
#
#   scripts/kafka-security.sh files          make what is missing in $KAFKA_SECURITY_DIR (once; kept)
#   scripts/kafka-security.sh env USER       the KAFKA_* settings of USER (admin or a service), NAME=value lines
#   scripts/kafka-security.sh scram-args     StorageTool's --add-scram arguments for every user
#   scripts/kafka-security.sh acls           grant every service its ACLs (admin client; idempotent)
#
# Files live in the cache ($CACHE_DIR/kafka-security, 0700; override KAFKA_SECURITY_DIR), outside
# every clone and never committed: ca.pem (the CA clients trust), broker.pem (the brokers' key
# and certificate, CN=kafka-broker, for 127.0.0.1 and localhost), <user>.password.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SERVICES=(task-api ws-gateway notification-service recurring-task-service audit-service)
# Users the secured test starts a service as, to see it refused: no-acls has no ACL at all;
# no-group has audit-service's topic ACLs but none for a consumer group.
USERS=(admin "${SERVICES[@]}" no-acls no-group)
MECHANISM=SCRAM-SHA-512

cmd_files() {
    need_cmd openssl
    mkdir -p "$KAFKA_SECURITY_DIR"
    chmod 700 "$KAFKA_SECURITY_DIR"
    local d="$KAFKA_SECURITY_DIR" user
    exec 6>"$d/.lock"
    flock -w 60 6 || die "could not lock $d"
    if [[ ! -s "$d/ca.pem" || ! -s "$d/broker.pem" ]]; then
        log "making a local CA and the brokers' certificate in $d (openssl)"
        openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=todo-platform local Kafka CA" \
            -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=kafka-broker" \
            -keyout "$d/broker.key" -out "$d/broker.csr" 2>/dev/null
        openssl x509 -req -in "$d/broker.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
            -days 825 -out "$d/broker.crt" \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n') \
            2>/dev/null
        # Kafka's PEM key store: the key (PKCS#8, unencrypted: it never leaves this folder) then
        # the certificate chain.
        openssl pkcs8 -topk8 -nocrypt -in "$d/broker.key" -out "$d/broker.pk8"
        cat "$d/broker.pk8" "$d/broker.crt" "$d/ca.pem" >"$d/broker.pem"
        rm -f "$d/broker.csr" "$d/broker.key" "$d/broker.pk8" "$d/ca.srl"
        chmod 600 "$d"/*.pem "$d/ca.key" "$d/broker.crt"
    fi
    for user in "${USERS[@]}"; do
        if [[ ! -s "$d/$user.password" ]]; then
            (umask 077 && openssl rand -hex 24 >"$d/$user.password")
        fi
    done
    # The admin's client settings for Kafka's Java tools (kafka.sh's checks, kafka-tool.sh).
    {
        echo "security.protocol=SASL_SSL"
        echo "sasl.mechanism=$MECHANISM"
        echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(cat "$d/admin.password")\";"
        echo "ssl.truststore.type=PEM"
        echo "ssl.truststore.location=$d/ca.pem"
    } >"$d/admin.properties"
    chmod 600 "$d/admin.properties"
}

# The settings of service_kit::kafka for USER; secrets by file, never inline.
cmd_env() {
    local user="${1:-}"
    [[ -n "$user" ]] || die "usage: $0 env USER"
    [[ -s "$KAFKA_SECURITY_DIR/$user.password" ]] || die "no password for $user in $KAFKA_SECURITY_DIR (run: $0 files)"
    echo "KAFKA_SECURITY_PROTOCOL=SASL_SSL"
    echo "KAFKA_SASL_MECHANISM=$MECHANISM"
    echo "KAFKA_SASL_USERNAME=$user"
    echo "KAFKA_SASL_PASSWORD_FILE=$KAFKA_SECURITY_DIR/$user.password"
    echo "KAFKA_SSL_CA_LOCATION=$KAFKA_SECURITY_DIR/ca.pem"
}

# SCRAM credentials are written into the metadata log when the storage is formatted, so the
# brokers can authenticate each other (and the services) from their first start.
cmd_scram_args() {
    local user
    for user in "${USERS[@]}"; do
        printf -- '--add-scram\n%s=[name=%s,password=%s]\n' "$MECHANISM" "$user" "$(cat "$KAFKA_SECURITY_DIR/$user.password")"
    done
}

cmd_acls() {
    local python="$CACHE_DIR/venv/bin/python"
    [[ -x "$python" ]] || "$SCRIPTS_DIR/install-deps.sh" --python
    # `todoctl acls` derives them from the catalogue; the admin client of confluent-kafka (the
    # venv's) creates them in one request (rdkafka for Rust has no ACL API).
    {
        todoctl acls
        todoctl acls audit-service | awk '$2 == "topic" { $1 = "no-group"; print }'
    } | KAFKA_SECURITY_DIR="$KAFKA_SECURITY_DIR" KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-$KAFKA_BOOTSTRAP}" \
        "$python" "$SCRIPTS_DIR/kafka-acls.py"
}

case "${1:-}" in
files) cmd_files ;;
env) cmd_env "${2:-}" ;;
scram-args) cmd_scram_args ;;
acls) cmd_acls ;;
*)
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
