#!/usr/bin/env bash
# Wires MinIO to RabbitMQ for zipflow, then uploads the demo archive.
#
# Runs in the `init` service of infra/compose.yml (image quay.io/minio/mc), after MinIO is
# healthy and after the worker is healthy. The order matters: RabbitMQ drops a message
# published to an exchange with no bound queue, so the demo upload must wait until the
# worker has declared its queue. Safe to run again: every step checks before it acts.
#
# Environment (compose sets all of them):
#   MINIO_URL            MinIO's S3 endpoint, e.g. http://minio:9000
#   MINIO_ROOT_USER      MinIO credentials
#   MINIO_ROOT_PASSWORD
#   SOURCE_BUCKET        bucket people drop zips into (ZIPFLOW_SOURCE_BUCKET)
#   PROCESSED_BUCKET     bucket the worker writes to (ZIPFLOW_PROCESSED_BUCKET)
#   NOTIFY_ARN           the AMQP target, arn:minio:sqs::PRIMARY:amqp for MINIO_NOTIFY_AMQP_*_PRIMARY
#   DEMO_ARCHIVE         optional: a local zip to upload once as demo.zip
#   WAIT_SECONDS         optional: how long to wait for MinIO (default 60)
set -euo pipefail

ALIAS=local

say() {
    printf 'minio-notify: %s\n' "$*"
}

fail() {
    printf 'minio-notify: error: %s\n' "$*" >&2
    exit 1
}

require_env() {
    local name
    for name in "$@"; do
        [[ -n "${!name:-}" ]] || fail "environment variable $name is not set"
    done
}

wait_for_minio() {
    local deadline=$((SECONDS + ${WAIT_SECONDS:-60}))
    local output
    until output=$(mc alias set "$ALIAS" "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" 2>&1 \
        && mc ls "$ALIAS" 2>&1); do
        if ((SECONDS >= deadline)); then
            fail "MinIO at $MINIO_URL is not ready after ${WAIT_SECONDS:-60}s (is the minio service up and are MINIO_ROOT_USER/MINIO_ROOT_PASSWORD right?). Last answer: $output"
        fi
        say "waiting for MinIO at $MINIO_URL ..."
        sleep 2
    done
    say "MinIO at $MINIO_URL is ready"
}

create_bucket() {
    local bucket=$1
    mc mb --ignore-existing "$ALIAS/$bucket" >/dev/null \
        || fail "could not create bucket $bucket"
    say "bucket $bucket is there"
}

# MinIO matches a suffix filter byte for byte (internal/event/rules.go), so `--suffix .zip`
# alone would never announce USERS.ZIP. One rule per casing of ".zip" announces every zip
# and nothing else: other uploads never reach RabbitMQ or the worker.
ZIP_SUFFIXES=(.zip .zIp .ziP .zIP .Zip .ZIp .ZiP .ZIP)

# Whether `mc event ls` output holds a rule of NOTIFY_ARN for exactly this suffix. mc prints
# one rule a line: ARN, events, then `Filter: suffix="..."`. Plain bash: the mc image has
# no grep to rely on, and bash's [[ == ]] compares case-sensitively, as MinIO does.
has_rule() {
    local rules=$1 suffix=$2 line
    while IFS= read -r line; do
        if [[ $line == *"$NOTIFY_ARN"* && $line == *"suffix=\"$suffix\""* ]]; then
            return 0
        fi
    done <<<"$rules"
    return 1
}

subscribe_source_bucket() {
    local rules suffix output added=0
    rules=$(mc event ls --no-color "$ALIAS/$SOURCE_BUCKET" "$NOTIFY_ARN" 2>&1) \
        || fail "could not list the notification rules of $SOURCE_BUCKET: $rules"
    for suffix in "${ZIP_SUFFIXES[@]}"; do
        if has_rule "$rules" "$suffix"; then
            continue
        fi
        output=$(mc event add "$ALIAS/$SOURCE_BUCKET" "$NOTIFY_ARN" --event put --suffix "$suffix" 2>&1) \
            || fail "could not subscribe $SOURCE_BUCKET to $NOTIFY_ARN for $suffix (does the minio service set MINIO_NOTIFY_AMQP_ENABLE_PRIMARY=on and can it reach RabbitMQ?): $output"
        added=$((added + 1))
    done
    say "$SOURCE_BUCKET notifies $NOTIFY_ARN of new zips in any casing of .zip ($added rules added, ${#ZIP_SUFFIXES[@]} in all)"
}

upload_demo_archive() {
    if [[ -z ${DEMO_ARCHIVE:-} ]]; then
        say "no DEMO_ARCHIVE given: nothing to upload"
        return
    fi
    [[ -f $DEMO_ARCHIVE ]] || fail "demo archive $DEMO_ARCHIVE does not exist"
    local target="$ALIAS/$SOURCE_BUCKET/demo.zip"
    if mc stat "$target" >/dev/null 2>&1; then
        say "$SOURCE_BUCKET/demo.zip is already there: not uploading it again"
        return
    fi
    mc cp --quiet "$DEMO_ARCHIVE" "$target" >/dev/null || fail "could not upload $DEMO_ARCHIVE"
    say "uploaded $DEMO_ARCHIVE as $SOURCE_BUCKET/demo.zip: the worker processes it now"
}

main() {
    require_env MINIO_URL MINIO_ROOT_USER MINIO_ROOT_PASSWORD SOURCE_BUCKET PROCESSED_BUCKET NOTIFY_ARN
    wait_for_minio
    create_bucket "$SOURCE_BUCKET"
    create_bucket "$PROCESSED_BUCKET"
    subscribe_source_bucket
    upload_demo_archive
    say "done"
}

main "$@"
