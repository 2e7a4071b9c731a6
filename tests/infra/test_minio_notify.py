"""infra/minio-notify.sh against a stand-in `mc` that keeps the bucket's notification rules.

MinIO's suffix filter is a case-sensitive byte match (internal/event/rules.go), so the script
must subscribe every casing of ".zip"; and it runs at every start of the stack, so a second
run must add nothing. The stand-in prints `mc event ls` lines in mc's own layout
(cmd/event-list.go: ARN, events, `Filter: suffix="..."`) and refuses an identical rule as
MinIO does (ErrDuplicateQueueConfiguration).
"""

import itertools
import os
import subprocess
from pathlib import Path

from infra_support import NOTIFY_SCRIPT

ARN = "arn:minio:sqs::PRIMARY:amqp"
FAKE_MC = r"""#!/usr/bin/env bash
set -euo pipefail
state=${FAKE_MC_STATE:?}
echo "$*" >>"$state/calls"
case "$1 ${2:-}" in
    "alias set" | "ls local" | "mb --ignore-existing") exit 0 ;;
    "stat "*) exit 1 ;;
    "event ls")
        touch "$state/rules"
        while IFS= read -r suffix; do
            printf '%s   s3:ObjectCreated:*   Filter: suffix="%s"\n' "${5:?}" "$suffix"
        done <"$state/rules"
        ;;
    "event add")
        suffix=${8:?}
        touch "$state/rules"
        while IFS= read -r existing; do
            if [[ $existing == "$suffix" ]]; then
                echo "mc: <ERROR> duplicate queue configuration" >&2
                exit 1
            fi
        done <"$state/rules"
        echo "$suffix" >>"$state/rules"
        ;;
    *) echo "fake mc: unexpected: $*" >&2; exit 2 ;;
esac
"""


def every_casing(text: str) -> set[str]:
    return {"".join(chars) for chars in itertools.product(*({c.lower(), c.upper()} for c in text))}


def run_script(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    mc = bin_dir / "mc"
    mc.write_text(FAKE_MC)
    mc.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_MC_STATE": str(tmp_path),
        "MINIO_URL": "http://minio:9000",
        "MINIO_ROOT_USER": "zipflow",
        "MINIO_ROOT_PASSWORD": "secret",
        "SOURCE_BUCKET": "source",
        "PROCESSED_BUCKET": "processed",
        "NOTIFY_ARN": ARN,
    }
    return subprocess.run(
        ["bash", str(NOTIFY_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def rules(tmp_path: Path) -> list[str]:
    return (tmp_path / "rules").read_text().splitlines()


def test_every_casing_of_zip_is_subscribed_once(tmp_path) -> None:
    result = run_script(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(rules(tmp_path)) == sorted(every_casing(".zip"))
    assert "8 rules added, 8 in all" in result.stdout
    adds = [line for line in (tmp_path / "calls").read_text().splitlines() if "event add" in line]
    assert all(f"{ARN} --event put --suffix " in line for line in adds)


def test_a_second_run_adds_nothing(tmp_path) -> None:
    assert run_script(tmp_path).returncode == 0
    again = run_script(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 rules added, 8 in all" in again.stdout
    assert len(rules(tmp_path)) == 8


def test_a_stack_subscribed_for_lower_case_only_gets_the_other_casings(tmp_path) -> None:
    (tmp_path / "rules").write_text(".zip\n")
    result = run_script(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "7 rules added, 8 in all" in result.stdout
    assert sorted(rules(tmp_path)) == sorted(every_casing(".zip"))
