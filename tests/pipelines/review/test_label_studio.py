"""The review round trip with the REAL Label Studio server on 127.0.0.1.

A default-shaped run (clean on the 16-record fixture, then review_tasks) is pushed with
``python -m belle_kedro review push``'s function, which creates the project and imports
the tasks through label-studio-sdk; two reviewers annotate through the
SDK (accepts, rejects with reasons, an edit, an annotation changed later, one
conflicting pair); ``kedro run --pipeline=review`` pulls and applies. The server runs
from its own venv (scripts/install_label_studio.sh) with its own sqlite data folder.
Set BELLE_CAPTURE_REVIEW_EXPORT=path to store the server's export (the fast lane's
fixture tests/fixtures/review/label_studio_export.json was captured this way).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
import yaml

from belle_kedro.pipelines.review.push import push
from belle_kedro.pipelines.review.server import LabelStudio
from belle_kedro.pipelines.review.tasks import label_config, review_tasks
from tests.support.project import REPO_ROOT, base_parameters, open_session
from tests.support.review import (
    EDITED_LATER,
    PLAN,
    annotation_result,
    clean_fixture_run,
    read_the_clean_fixture,
    sample_row,
)

VENV = Path(os.environ.get("BELLE_LABEL_STUDIO_VENV", REPO_ROOT / ".venv-label-studio"))
TOKEN = "0123456789abcdef0123456789abcdef01234567"  # a throw-away server's token
ADMIN = ("admin@example.com", "review-test-password")
STARTUP_S = 540  # first start migrates a fresh sqlite database (minutes on 2 cores)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh Label Studio on 127.0.0.1 with a fixed admin and token; its URL."""
    if not (VENV / "bin" / "label-studio").is_file():
        pytest.skip(
            f"Label Studio is not installed in {VENV}: run scripts/install_label_studio.sh"
        )
    data = tmp_path_factory.mktemp("label-studio")
    port = _free_port()
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": ADMIN[0],
        "LABEL_STUDIO_PASSWORD": ADMIN[1],
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # "Token <t>" auth
        "LATEST_VERSION_CHECK": "false",  # no call to PyPI
    }
    log = (data / "server.log").open("w")
    server = subprocess.Popen(
        [str(VENV / "bin" / "label-studio"), "start", "--host", "127.0.0.1",
         "--port", str(port), "--no-browser", "--data-dir", str(data)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                if requests.get(f"{url}/health", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Label Studio did not start: {(data / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def _annotate(url: str, project: int) -> None:
    """Two reviewers' annotations, posted through the SDK in the plan's order."""
    client = LabelStudio.connect(url, TOKEN, 30).client
    second = client.users.create(email="reviewer2@example.com", username="reviewer2")
    reviewers = {1: client.users.whoami().id, 2: second.id}
    listed: Iterable[Any] = client.tasks.list(project=project)
    tasks = {
        (task.data["stratum"], task.data["instruction"]): task.id for task in listed
    }
    for key, decisions in PLAN.items():
        for reviewer, decision, detail in decisions:
            created = client.annotations.create(
                tasks[key],
                result=annotation_result(decision, detail),
                completed_by=reviewers[reviewer],
            )
            time.sleep(0.05)  # distinct updated_at, as real reviewers' would be
            if key == EDITED_LATER:
                client.annotations.update(
                    created.id, result=annotation_result("accept", "")
                )


@pytest.mark.slow
def test_review_round_trip_with_a_real_label_studio(
    label_studio: str, kedro_project: Path, monkeypatch: pytest.MonkeyPatch
):
    local = kedro_project / "conf" / "local"
    read_the_clean_fixture(kedro_project)
    with open_session(kedro_project) as session:
        session.run(pipeline_names=["clean"])
    with open_session(kedro_project) as session:
        session.run(pipeline_names=["review_tasks"])
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
    message = push(None, label_studio)
    assert "16 task(s) imported, 0 already there" in message
    # Idempotent: a second push imports nothing.
    assert "0 task(s) imported, 16 already there" in push(None, label_studio)

    server = LabelStudio.connect(label_studio, TOKEN, 30)
    project = server.find_project("belle-kedro review")
    assert project is not None
    exported = server.export(project)
    assert len(exported) == 16
    [prediction] = server.client.predictions.list(task=exported[0]["id"])
    signals = prediction.result or []
    assert {item["from_name"] for item in signals} >= {
        "task_class",
        "decision",
        "signals",
    }
    _annotate(label_studio, project)

    (local / "parameters_review.yml").write_text(
        yaml.safe_dump(
            {
                "review": {
                    "enabled": True,
                    "restore_false_drops": True,
                    "label_studio": {"url": label_studio},
                }
            }
        ),
        encoding="utf-8",
    )
    with open_session(kedro_project) as session:
        session.run(pipeline_names=["review"])
        catalog = session.load_context().catalog
        reviewed = catalog.load("reviewed_instructions")
        sample = catalog.load("review_sample")
        applied = catalog.load("review_annotations")
    capture = os.environ.get("BELLE_CAPTURE_REVIEW_EXPORT")
    if capture:
        Path(capture).write_text(
            json.dumps(applied, ensure_ascii=False, indent=1), encoding="utf-8"
        )

    by_instruction = reviewed.set_index("instruction")
    # Kept: 2 rejected, 1 edited, 1 unreviewed kept; dropped: 3 accepted restored.
    assert sorted(reviewed["instruction"]) == sorted(
        [
            "给出三条保持健康作息的建议",
            "写一首关于秋天的五言绝句",
            "计算 12 乘以 15 等于多少",
            "把下面的句子改写得更礼貌",
            "把这句话翻译成英文",
            "介绍一下长江的地理概况",
            "比较GPT和BERT在结构上的不同",
            "请给出三条保持健康作息的小建议",
        ]
    )
    assert (
        by_instruction.loc["计算 12 乘以 15 等于多少", "output"]
        == "12 乘以 15 等于 180。"
    )
    assert by_instruction.loc["计算 12 乘以 15 等于多少", "review_decision"] == "edit"
    assert by_instruction.loc["写一首关于秋天的五言绝句", "review_decision"] == "accept"
    assert by_instruction.loc["把这句话翻译成英文", "review_decision"] == "unreviewed"
    assert by_instruction.loc["介绍一下长江的地理概况", "reviewed_by"] == "2"
    assert len(sample) == 16

    report_path = (
        next((kedro_project / "data/08_reporting/review_report.json").iterdir())
        / "review_report.json"
    )
    report = json.loads(report_path.read_text(encoding="utf-8"))
    quality = report["quality"]
    # Hand-computed: kept 4 of 6 accepted, dropped 3 of 8 would be kept.
    assert quality["keep_precision"]["all"] == {
        "share": 0.6667, "low": 0.3, "high": 0.9032, "accepted": 4, "reviewed": 6,
    }  # fmt: skip
    assert quality["false_drops"]["all"] == {
        "share": 0.375, "low": 0.1368, "high": 0.6943, "accepted": 3, "reviewed": 8,
    }  # fmt: skip
    assert list(report["conflicts"]) == [
        sample_row(sample, "kept", "解释什么是通货膨胀")["record_id"]
    ]
    runs = mlflow.search_runs(experiment_names=["belle_kedro"], output_format="list")
    review_run = next(r for r in runs if "review.keep_precision.all" in r.data.metrics)
    assert review_run.data.metrics["review.keep_precision.all"] == pytest.approx(0.6667)
    assert review_run.data.metrics["review.false_drops.by_rule.language"] == 1.0
    clean_run = next(
        r for r in runs if "clean.classifier.held_out_accuracy" in r.data.metrics
    )
    assert 0 < clean_run.data.metrics["clean.classifier.held_out_accuracy"] <= 1


@pytest.mark.slow
def test_a_real_browser_shows_a_task_through_our_labelling_config(
    label_studio: str, tmp_path: Path
):
    """Chromium (Selenium) logs in and opens one task: the screenshot shows the record
    and the pre-annotated signals. BELLE_REVIEW_SCREENSHOT=path keeps the picture."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    run = clean_fixture_run()
    selection, sample = run["selection"], run["sample"]
    server = LabelStudio.connect(label_studio, TOKEN, 30)
    project = server.ensure_project(
        "browser check",
        label_config(tuple(base_parameters("review")["reject_reasons"]),
                     tuple(selection["classifier"]["classes"])),
    )  # fmt: skip
    row = sample_row(sample, "dropped", "请给出三条保持健康作息的小建议")
    server.import_new(
        project, review_tasks(sample[sample["record_id"] == row["record_id"]])
    )  # fmt: skip
    [task] = server.export(project)

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--window-size=1400,1800"):
        options.add_argument(flag)
    browser = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=driver_path), options=options
    )
    try:
        browser.get(f"{label_studio}/user/login")
        browser.find_element(By.NAME, "email").send_keys(ADMIN[0])
        browser.find_element(By.NAME, "password").send_keys(ADMIN[1])
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 60).until(lambda b: "/user/login" not in b.current_url)
        browser.get(f"{label_studio}/projects/{project}/data?task={task['id']}")
        WebDriverWait(browser, 120).until(
            lambda b: "Automatic signals" in b.find_element(By.TAG_NAME, "body").text
        )
        time.sleep(3)  # let the pre-annotation render into the form
        text = browser.find_element(By.TAG_NAME, "body").text
        screenshot = Path(
            os.environ.get("BELLE_REVIEW_SCREENSHOT", tmp_path / "review_task.png")
        )
        browser.save_screenshot(str(screenshot))
    finally:
        browser.quit()
    assert "请给出三条保持健康作息的小建议" in text
    assert "Automatic signals" in text and "Decision" in text
    assert screenshot.stat().st_size > 10_000
