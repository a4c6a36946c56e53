"""A whole ``kedro run --pipeline generate`` (loopback chat API) with its data folder on
a real tmpfs that fills mid-run (tests/support/small_disk.py).

Filled before ``request_responses`` with room for the journal's reserve and a few
answers, the journal meets the full disk mid-plan, releases its reserve, journals the
answers in flight and stops (the write wrapper of test_batch_pipeline.py tries a full
disk through ``os.write``); filled before ``parse_responses``, every answer is journaled
and the ``generated_instructions`` Parquet save meets it. Either way: the error names
the file, the journal holds whole records only and every answer paid for, and the rerun
after freeing gives the undisturbed run's table without paying for any answer twice.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from belle_kedro.llm.journal import RESERVE_PER_ANSWER, ResponseJournal
from tests.support.loopback import GENERATED, JOURNAL, belle_reply, write_loopback_env
from tests.support.openai_server import FakeOpenAIServer
from tests.support.project import open_session
from tests.support.small_disk import FillBeforeNode, project_data_on_small_disk

IN_FLIGHT = 4  # write_loopback_env's max_in_flight
FULL_BEFORE = {
    # node the disk fills before: (bytes left, the error's start); one page beside the
    # reserve holds a few answers, so the disk fills mid-plan
    "request_responses": (
        IN_FLIGHT * RESERVE_PER_ANSWER + 4096,
        "[Errno 28] {data}/01_raw/raw_responses.jsonl: disk full (No space left on "
        "device); nothing more was sent, and the ",
    ),
    "parse_responses": (0, "generated_instructions: "),
}


def generate(project: Path, hook: FillBeforeNode | None = None) -> None:
    with open_session(project, env="loopback") as session:
        if hook is not None:
            session._hook_manager.register(hook)
        session.run(pipeline_names=["generate"])


def paid(server: FakeOpenAIServer) -> Counter[str]:
    return Counter(request["client_request_id"] for request in server.requests)


@pytest.mark.slow
@pytest.mark.parametrize("node", list(FULL_BEFORE))
def test_a_disk_that_fills_mid_generate_loses_no_answer(
    generate_project: Path, monkeypatch: pytest.MonkeyPatch, node: str
) -> None:
    leave, error_start = FULL_BEFORE[node]
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    with FakeOpenAIServer(belle_reply) as server:
        # 20 requests: a journal of ~12 KB, past the one page left free.
        write_loopback_env(
            generate_project,
            server.base_url,
            num_instructions_to_generate=60,
            max_requests=30,
        )
        shutil.copytree(generate_project, reference)
        generate(reference)
        paid_by_reference = paid(server)
        server.requests.clear()
        with project_data_on_small_disk(generate_project, "64m") as disk:
            with pytest.raises(Exception) as raised:
                generate(generate_project, FillBeforeNode(disk, node, leave))
            while mlflow.active_run() is not None:  # the failed session's run
                mlflow.end_run()
            assert str(raised.value).startswith(error_start.format(data=disk.folder))
            assert "No space left on device" in str(raised.value)
            journal = disk.folder / JOURNAL.relative_to("data")
            lines = journal.read_bytes().split(b"\n")
            assert lines[-1] == b""  # whole records only
            records = ResponseJournal(journal).records()
            assert len(records) == len(lines) - 1 > 0
            # Every answer paid for, those in flight when the disk filled included.
            assert {r["request_id"] for r in records if not r.get("error")} == set(
                paid(server)
            )
            assert not (disk.folder / GENERATED.relative_to("data")).exists()
            assert not [name for name in disk.files() if name.endswith(".reserve")]
            disk.free()
            generate(generate_project)
            table = pd.read_parquet(disk.folder / GENERATED.relative_to("data"))
        paid_in_all = paid(server)
    pd.testing.assert_frame_equal(table, pd.read_parquet(reference / GENERATED))
    assert set(paid_in_all) == set(paid_by_reference)
    repaid = {key: count for key, count in paid_in_all.items() if count > 1}
    assert not repaid
